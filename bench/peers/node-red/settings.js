// Node-RED settings for bench/run: loopback only, no editor, quiet; the flow file is given on
// the command line (flows.json in the user directory).
module.exports = {
    uiHost: "127.0.0.1",
    disableEditor: true,
    httpAdminRoot: false,
    logging: { console: { level: "warn", metrics: false, audit: false } },
    flowFilePretty: false,
};
