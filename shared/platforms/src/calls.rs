//! What both targets share: SDK errors as [`DeployError`]s, and bounded waiting.

use std::time::Duration;

use aws_sdk_bedrockagent::config::http::HttpResponse;
use aws_sdk_bedrockagent::error::SdkError;
use aws_smithy_types::error::display::DisplayErrorContext;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use tdev_domain::deploy::DeployError;
use tokio::time::Instant;

/// Error codes that say "not now" rather than "no": trying again later can succeed.
/// `ConflictException` is a resource still busy with an earlier change.
const TRANSIENT_CODES: &[&str] = &[
    "ThrottlingException",
    "TooManyRequestsException",
    "InternalServerException",
    "ServiceUnavailableException",
    "ConflictException",
    "RequestTimeout",
];

/// An SDK call's result, its error turned into a [`DeployError`].
pub(crate) trait CallResult<T> {
    /// `operation` names the call in the message (e.g. `CreateAgent`).
    fn or_deploy_error(self, operation: &str) -> Result<T, DeployError>;
}

impl<T, E> CallResult<T> for Result<T, SdkError<E, HttpResponse>>
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    fn or_deploy_error(self, operation: &str) -> Result<T, DeployError> {
        self.map_err(|error| {
            let transient = match &error {
                SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => true,
                SdkError::ServiceError(context) => {
                    context.raw().status().is_server_error()
                        || error.code().is_some_and(|code| TRANSIENT_CODES.contains(&code))
                }
                _ => false,
            };
            // The error's own text: its code and AWS's message, never the request.
            let message = format!("{operation}: {}", DisplayErrorContext(&error));
            if transient { DeployError::Unavailable(message) } else { DeployError::Failed(message) }
        })
    }
}

/// How long one step may wait, all its waits together, for resources to settle. The
/// pipeline runs each step in a worker with a 60 s timeout and checks its 40 s work budget
/// only between steps, so a step's waiting must end well within what is left; a resource
/// still busy then makes the step `Settling`, and the pipeline repeats it later (every
/// step looks before it acts).
pub(crate) const STEP_WAIT: Duration = Duration::from_secs(15);

/// A last sleep shorter than this is not worth another look: the step gives up instead.
const SHORTEST_SLEEP: Duration = Duration::from_millis(500);

/// When one step's waiting must end. Made once when the step starts and shared by each of
/// its waits, so that two waits in one step (e.g. for the agent before and after an
/// update) cannot wait twice the limit.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Deadline {
    started: Instant,
    limit: Duration,
}

impl Deadline {
    /// `limit` from now.
    pub(crate) fn after(limit: Duration) -> Self {
        Self { started: Instant::now(), limit }
    }

    /// A new wait within this deadline, starting with short sleeps.
    pub(crate) fn backoff(self) -> Backoff {
        Backoff { deadline: self, delay: Duration::from_secs(1) }
    }
}

/// Waiting for a resource to settle: sleeps of 1, 2, 4… up to 10 seconds, cut short by the
/// step's [`Deadline`]; once that has passed, the step is `Settling`, and the pipeline
/// will ask again.
pub(crate) struct Backoff {
    deadline: Deadline,
    delay: Duration,
}

impl Backoff {
    /// Sleeps before the next look, or gives up: `what` is what is still unfinished
    /// (e.g. `the alias live is still UPDATING`).
    pub(crate) async fn wait(&mut self, what: &str) -> Result<(), DeployError> {
        let left = self.deadline.limit.saturating_sub(self.deadline.started.elapsed());
        let sleep = self.delay.min(left);
        if sleep < SHORTEST_SLEEP {
            let limit = self.deadline.limit.as_secs();
            return Err(DeployError::Settling(format!("{what} after {limit} s")));
        }
        tokio::time::sleep(sleep).await;
        self.delay = (self.delay * 2).min(Duration::from_secs(10));
        Ok(())
    }
}
