// A hookflow node written in JavaScript: scores an order and picks the `high` or `low` branch.
//
// Build:  npm ci && npm run build   (componentize-js, with --disable http fetch-event: see package.json)
// Check:  hookflow plugin check scorer.wasm

import { log } from "hookflow:node/host@0.1.0";

const CONFIG_SCHEMA = {
  type: "object",
  properties: {
    threshold: { type: "number", default: 100, description: "score from which an order is `high`" },
    order: { description: "the order, usually {{$context.body}}: {items: [{price, qty}], vip: bool}" },
  },
};

/** Fails the run: the job and its execution end with status `error`. */
class NodeFailure extends Error {
  constructor(message) {
    super(message);
    this.payload = { message };
  }
}

export function describe() {
  return {
    name: "scorer",
    version: "0.1.0",
    configSchema: JSON.stringify(CONFIG_SCHEMA),
    branches: ["high", "low"],
    mayRespond: false,
  };
}

export function run(invocation) {
  const config = JSON.parse(invocation.config);
  const threshold = config.threshold ?? 100;
  if (typeof threshold !== "number") {
    throw new NodeFailure(`threshold: expected a number, got ${JSON.stringify(threshold)}`);
  }
  const order = config.order;
  if (order === null || typeof order !== "object" || Array.isArray(order)) {
    throw new NodeFailure("order: expected an object such as {{$context.body}}");
  }
  let score = 0;
  (order.items ?? []).forEach((item, index) => {
    const price = Number(item?.price);
    const qty = item?.qty === undefined ? 1 : Number(item.qty);
    if (item?.price === undefined || Number.isNaN(price) || !Number.isInteger(qty)) {
      throw new NodeFailure(`order.items[${index}]: expected {price, qty}`);
    }
    score += price * qty;
  });
  if (order.vip === true) {
    score *= 1.5;
  }
  const branch = score >= threshold ? "high" : "low";
  log("info", `order scored ${score.toFixed(2)}: ${branch}`);
  return { output: JSON.stringify({ score, branch }), directive: { tag: "branch", val: branch } };
}
