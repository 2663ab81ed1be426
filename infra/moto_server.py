"""moto_server, as the test command starts it, with one thing AWS does that moto does not.

moto's bedrock-agentcore-control moves a new runtime (and endpoint) from CREATING to
READY, but leaves an updated one UPDATING for ever: its state manager knows only the
CREATING -> READY transition. AWS makes an updated runtime READY again once its new
version is up, and the deployment pipeline waits for that. This adds UPDATING -> READY to
both models, with moto's own state manager (default progression: immediate). And moto's
UpdateAgentRuntimeEndpoint sets only the endpoint's target version and never makes it
live; AWS does, once the endpoint is READY, and the pipeline waits for that too: a READY
endpoint here serves its target version.

And moto serves requests on many threads, but its DynamoDB model is not thread-safe: two
UpdateItem calls with `ADD attempts :one` racing on one item can both read the old value,
and one increment is lost. DynamoDB applies every write request to an item atomically (the
conformance suite races ten such updates and checks all ten count), so here one DynamoDB
request at a time is handled, as a single request. SQS is untouched: its long polls must not
hold a lock. Everything else is moto as installed. Usage: python infra/moto_server.py -H 127.0.0.1 -p 5000
"""

import sys
import threading

from moto.bedrockagentcorecontrol import models


def _also_ready_after_update(cls):
    init = cls.__init__

    def __init__(self, *args, **kwargs):
        init(self, *args, **kwargs)
        self._transitions = [*self._transitions, ("UPDATING", "READY")]

    cls.__init__ = __init__


for model in (models.AgentRuntime, models.AgentRuntimeEndpoint):
    _also_ready_after_update(model)

_status = models.AgentRuntimeEndpoint.status


def _status_and_live(self):
    status = _status.fget(self)
    if status == "READY":
        self.live_version = self.target_version
    return status


models.AgentRuntimeEndpoint.status = property(_status_and_live, _status.fset)

from moto.dynamodb.responses import DynamoHandler  # noqa: E402

_dynamodb_lock = threading.Lock()
_call_action = DynamoHandler.call_action


def _one_request_at_a_time(self):
    with _dynamodb_lock:
        return _call_action(self)


DynamoHandler.call_action = _one_request_at_a_time

from moto.server import main  # noqa: E402  (after the models are patched)

sys.exit(main())
