"""Signs a webhook request with the sender's own Python library: reads {"library", "secret",
"body", "timestamp", "url", "params"} as JSON from standard input and writes {"headers": {...}}.
Slack's slack_sdk and Twilio's twilio, pinned by requirements.lock; used by
tests/tests/engine/senders.rs."""

import json
import sys

from slack_sdk.signature import SignatureVerifier
from twilio.request_validator import RequestValidator

request = json.load(sys.stdin)
library = request["library"]
if library == "slack":
    timestamp = str(request["timestamp"])
    signature = SignatureVerifier(request["secret"]).generate_signature(timestamp=timestamp, body=request["body"])
    headers = {"X-Slack-Request-Timestamp": timestamp, "X-Slack-Signature": signature}
elif library == "twilio":
    signature = RequestValidator(request["secret"]).compute_signature(request["url"], request["params"])
    headers = {"X-Twilio-Signature": signature}
else:
    raise SystemExit(f"unknown library {library}")
json.dump({"headers": headers}, sys.stdout)
