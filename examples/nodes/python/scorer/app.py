"""A hookflow node written in Python: scores an order and picks the `high` or `low` branch.

Build:  componentize-py -d ../../../../wit -w context-reader componentize app -o scorer.wasm
Check:  hookflow plugin check scorer.wasm
"""

import json

import wit_world
from componentize_py_types import Err
from wit_world import Directive_Branch, NodeError, NodeInfo, Outcome
from wit_world.imports import host

CONFIG_SCHEMA = {
    "type": "object",
    "properties": {
        "threshold": {"type": "number", "default": 100, "description": "score from which an order is `high`"},
        "order": {"description": "the order, usually {{$context.body}}: {items: [{price, qty}], vip: bool}"},
    },
}


def fail(message: str) -> Err:
    return Err(NodeError(message))


class WitWorld(wit_world.WitWorld):
    def describe(self) -> NodeInfo:
        return NodeInfo(
            name="scorer",
            version="0.1.0",
            config_schema=json.dumps(CONFIG_SCHEMA),
            branches=["high", "low"],
            may_respond=False,
        )

    def run(self, invocation: wit_world.Invocation) -> Outcome:
        config = json.loads(invocation.config)
        threshold = config.get("threshold", 100)
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float)):
            raise fail(f"threshold: expected a number, got {json.dumps(threshold)}")
        order = config.get("order")
        if not isinstance(order, dict):
            raise fail("order: expected an object such as {{$context.body}}")
        score = 0.0
        for index, item in enumerate(order.get("items") or []):
            try:
                score += float(item["price"]) * int(item.get("qty", 1))
            except (KeyError, TypeError, ValueError):
                raise fail(f"order.items[{index}]: expected {{price, qty}}")
        if order.get("vip") is True:
            score *= 1.5
        branch = "high" if score >= threshold else "low"
        host.log(host.Level.INFO, f"order scored {score:.2f}: {branch}")
        return Outcome(output=json.dumps({"score": score, "branch": branch}), directive=Directive_Branch(branch))
