//! What every moto test shares: the endpoint, explicit test credentials, unique names.
//! (`shared/platforms`' moto tests include this file too.)

#![allow(dead_code)]

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::Credentials;
use aws_credential_types::provider::SharedCredentialsProvider;

/// A configuration that can only reach the moto server `infra/test.sh` started.
pub fn moto_config() -> SdkConfig {
    let url = std::env::var("TDEV_TEST_MOTO_URL").unwrap_or_else(|_| {
        panic!(
            "TDEV_TEST_MOTO_URL is not set: these tests need a moto server. Run the project's \
             test command, infra/test.sh, which starts moto and sets it (or start \
             `.venv/bin/python infra/moto_server.py -p 5123` and set TDEV_TEST_MOTO_URL=http://127.0.0.1:5123)"
        )
    });
    // Everything explicit, so no environment variable or profile file can point the
    // tests at a real account.
    SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(url)
        .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
            "testing",
            "testing",
            None,
            None,
            "tdev-tests",
        )))
        .build()
}

/// Names are per run: moto outlives a test run, and SQS keeps dedup ids for 5 minutes.
pub fn unique(purpose: &str) -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    format!("tdev-{purpose}-{}-{nanos}", std::process::id())
}
