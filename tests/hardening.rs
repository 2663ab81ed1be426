//! The local stack as a user starts it (`tdev serve`, a process of its own) against what
//! an attacker sends: settings that would crash it, secrets left readable, and the worst
//! inputs found so far, sent by 8 clients at once while `/health` is watched.
//!
//! The attack runs for `TDEV_ATTACK_SECONDS` (10 by default; 30 or more for a soak run)
//! and prints the slowest `/health` answers; BENCHMARKS.md has the figures of a release
//! build. The test asserts what must hold at any speed: the process survives, every
//! probe of `/health` is answered, and every hostile request gets a 4xx (never a 5xx).

mod support;

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;
use support::{free_port, tdev_serve, temp_dir};

struct Serve {
    child: Child,
    base: String,
    dir: PathBuf,
}

/// Whether `GET /health` answers 200 (the stack answers once it has bootstrapped).
fn health(port: u16) -> bool {
    use std::io::{Read as _, Write as _};
    let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) else { return false };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    if stream.write_all(b"GET /health HTTP/1.0\r\nhost: localhost\r\n\r\n").is_err() {
        return false;
    }
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.") && &head[9..12] == b"200"
}

impl Serve {
    /// `tdev serve` in `dir` with its default data folder `.tdev`, and `env` set.
    fn start(dir: &Path, env: &[(&str, &str)]) -> Serve {
        let port = free_port();
        let mut command = tdev_serve(dir, port);
        command.env("RUST_LOG", "error").stdout(Stdio::null()).stderr(Stdio::null());
        for (name, value) in env {
            command.env(name, value);
        }
        let child = command.spawn().expect("tdev serve starts");
        let serve = Serve { child, base: format!("http://127.0.0.1:{port}"), dir: dir.to_owned() };
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if health(port) {
                return serve;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("tdev serve did not answer /health within 30 s");
    }

    fn admin_key(&self) -> String {
        std::fs::read_to_string(self.dir.join(".tdev/admin-key")).unwrap().trim().to_owned()
    }

    fn alive(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    fn stop(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).permissions().mode() & 0o777
}

#[test]
fn a_setting_out_of_range_stops_the_start_and_names_the_variable() {
    let dir = temp_dir("settings");
    for (name, value) in [
        ("TDEV_RATE_REFILL_PER_MINUTE", "1000000000"),
        ("TDEV_RATE_CAPACITY", "0"),
        ("TDEV_ATTEMPT_TIMEOUT_SECONDS", "0"),
        ("TDEV_TOKEN_TTL_SECONDS", "86400"),
        ("TDEV_DEPLOY_WORK_SECONDS", "100000"),
        ("TDEV_BREAKER_OPEN_SECONDS", "-1"),
        ("TDEV_MESSAGE_BANDS", "1-3,3-10"),
    ] {
        let output = Command::new(env!("CARGO_BIN_EXE_tdev"))
            .arg("serve")
            .current_dir(&dir)
            .env("TDEV_ADDR", format!("127.0.0.1:{}", free_port()))
            .env(name, value)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{name}={value} was accepted");
        assert!(stderr.contains(name), "{name}={value}: the error does not name it: {stderr}");
    }
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn the_data_folder_and_its_files_are_private_on_first_start_and_after_a_restart() {
    let dir = temp_dir("private");
    let check = |when: &str| {
        assert_eq!(mode(&dir.join(".tdev")), 0o700, "{when}: .tdev");
        for file in ["tdev.db", "tdev.db-wal", "tdev.db-shm", "admin-key"] {
            assert_eq!(mode(&dir.join(".tdev").join(file)), 0o600, "{when}: {file}");
        }
    };
    let serve = Serve::start(&dir, &[]);
    check("first start");
    serve.stop();
    // As an older version left them: readable by everyone.
    std::fs::set_permissions(dir.join(".tdev"), std::fs::Permissions::from_mode(0o755)).unwrap();
    for file in ["tdev.db", "tdev.db-wal", "tdev.db-shm", "admin-key"] {
        let path = dir.join(".tdev").join(file);
        if path.exists() {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644)).unwrap();
        }
    }
    let serve = Serve::start(&dir, &[]);
    check("after a restart");
    serve.stop();
    std::fs::remove_dir_all(dir).unwrap();
}

/// One hostile request: method, path, content type, body.
struct Hostile {
    name: &'static str,
    path: &'static str,
    content_type: &'static str,
    body: String,
}

fn workflow_with_condition(expression: &str) -> String {
    json!({"id": "wf", "name": "wf", "steps": [
        {"id": "c", "name": "c", "type": "condition", "parameters": {"expression": expression, "when_true": []}}
    ]})
    .to_string()
}

/// The inputs that aborted or stalled the process before, and their relatives.
fn worst_inputs(max_body: usize) -> Vec<Hostile> {
    let yaml = "application/yaml";
    let json = "application/json";
    let many_aliases = {
        let mut text = String::from("id: wf\nname: wf\nbad: &bad {id: x, type: agent}\nsteps: [");
        text.push_str(&vec!["*bad"; 99_000].join(", "));
        text.push_str("]\n");
        text
    };
    let bad_steps_yaml = {
        let mut text = String::from("id: wf\nname: wf\nsteps:\n");
        while text.len() < 500_000 {
            text.push_str("  - {id: s, type: agent, parameters: {expression: '((((('}}\n");
        }
        text
    };
    vec![
        Hostile {
            name: "12 nested parentheses in CEL",
            path: "/v1/workflows:validate",
            content_type: json,
            body: workflow_with_condition("((((((((((((1))))))))))))"),
        },
        Hostile {
            name: "12 nested lists in CEL",
            path: "/v1/workflows:validate",
            content_type: json,
            body: workflow_with_condition("[[[[[[[[[[[[1]]]]]]]]]]]]"),
        },
        Hostile {
            name: "10,000 terms in CEL",
            path: "/v1/workflows:validate",
            content_type: json,
            body: workflow_with_condition(&vec!["1"; 10_000].join("+")),
        },
        Hostile {
            name: "1 MiB of [ as YAML",
            path: "/v1/workflows:validate",
            content_type: yaml,
            body: "[".repeat(max_body - 1),
        },
        Hostile {
            name: "99k aliases",
            path: "/v1/workflows:validate",
            content_type: yaml,
            body: many_aliases.clone(),
        },
        Hostile {
            name: "500 KB of bad steps",
            path: "/v1/workflows",
            content_type: yaml,
            body: bad_steps_yaml,
        },
        Hostile {
            name: "deep JSON",
            path: "/v1/workflows:validate",
            content_type: json,
            body: "[".repeat(max_body / 2),
        },
        Hostile {
            name: "deep YAML deploy spec",
            path: "/v1/deployments:validate",
            content_type: yaml,
            body: format!("name: a\ninstruction: {}", "{a: ".repeat(100_000)),
        },
        Hostile {
            name: "aliases in a deploy spec",
            path: "/v1/deployments:validate",
            content_type: yaml,
            body: many_aliases,
        },
        Hostile {
            name: "a token body as a list",
            path: "/v1/tokens",
            content_type: json,
            body: r#"[["read"], 5]"#.into(),
        },
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_worst_inputs_from_eight_clients_neither_crash_nor_stall_the_stack() {
    let seconds: u64 = std::env::var("TDEV_ATTACK_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(10);
    let dir = temp_dir("attack");
    let max_body = 1024 * 1024;
    let mut serve = Serve::start(&dir, &[("TDEV_FAILED_AUTH_CAPACITY", "1000000")]);
    let client = reqwest::Client::builder().timeout(Duration::from_secs(60)).build().unwrap();
    let admin = serve.admin_key();
    // A caller with only the read scope, as in the report.
    let reader: serde_json::Value = client
        .post(format!("{}/v1/keys", serve.base))
        .header("x-api-key", &admin)
        .json(&json!({"name": "reader", "scopes": ["read"], "rate_limit": {"capacity": 1000000, "refill_per_minute": 6000000}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let reader = reader["secret"].as_str().unwrap().to_owned();
    let inputs = Arc::new(worst_inputs(max_body));

    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let mut attackers = Vec::new();
    for attacker in 0..8 {
        let (client, base, key, inputs, stop, sent) =
            (client.clone(), serve.base.clone(), reader.clone(), inputs.clone(), stop.clone(), sent.clone());
        attackers.push(tokio::spawn(async move {
            let mut i = attacker;
            while !stop.load(Ordering::Relaxed) {
                let input = &inputs[i % inputs.len()];
                i += 1;
                let response = client
                    .post(format!("{base}{}", input.path))
                    .header("x-api-key", &key)
                    .header("content-type", input.content_type)
                    .body(input.body.clone())
                    .send()
                    .await
                    .unwrap_or_else(|e| panic!("{}: no answer: {e}", input.name));
                let status = response.status().as_u16();
                assert!(status < 500, "{}: {status}", input.name);
                sent.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }

    // /health every 50 ms, each answer timed.
    let mut latencies = Vec::new();
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(seconds) {
        let probe = Instant::now();
        let response = client
            .get(format!("{}/health", serve.base))
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .expect("/health answers while under attack");
        assert!(response.status().is_success(), "/health: {}", response.status());
        latencies.push(probe.elapsed());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for attacker in attackers {
        attacker.await.expect("every hostile request got a 4xx");
    }
    assert!(serve.alive(), "the process survived");
    latencies.sort();
    let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q) as usize];
    println!(
        "attack: {seconds} s, 8 clients, {} hostile requests; /health {} probes: p50 {:?}, p99 {:?}, max {:?}",
        sent.load(Ordering::Relaxed),
        latencies.len(),
        at(0.5),
        at(0.99),
        latencies.last().unwrap()
    );
    assert!(sent.load(Ordering::Relaxed) > 0);
    serve.stop();
    std::fs::remove_dir_all(dir).unwrap();
}
