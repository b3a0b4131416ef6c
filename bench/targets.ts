// Every benchmark's figures, what each means, its target and the reference it is compared with,
// as the issues set them (issue 2 kernel, 3 client, 4 federation, 5 MLS, 6 application services).
// The one place these live: scripts/bench-report.ts writes docs/benchmarks.md from this table and
// the last JSON line of each `npm run bench:<name>`.

/** A target: the figure compared with a number, or with another figure of the same run. */
export type Target = { op: ">=" | ">" | "<=" | "<"; value: number } | { op: "<"; figure: string; text: string };

export interface Figure {
  /** The key in the benchmark's JSON line. */
  key: string;
  label: string;
  /** Unit shown after the value, e.g. "events/s", "ms", "MB", "s". */
  unit: string;
  target?: Target;
  /** What the figure is compared with, e.g. another server's published number. */
  reference?: string;
}

export interface Benchmark {
  /** `npm run bench:<name>`. */
  name: string;
  title: string;
  issue: number;
  /** How it is run and what one run measures. */
  about: string;
  figures: Figure[];
}

export const BENCHMARKS: readonly Benchmark[] = [
  {
    name: "kernel",
    title: "Event kernel",
    issue: 2,
    about:
      "One core (taskset), pure code: the crypto ceiling (one Ed25519 verify and one sign per event), hub completion of LPDUs " +
      "(signature, hash, auth against a room of 1,000 members, completion, signing) and the participant pipeline on the results.",
    figures: [
      { key: "crypto_ceiling_eps", label: "crypto ceiling", unit: "events/s", reference: "one Ed25519 verify + one sign per event, the native backend (OpenSSL verifies, libsodium signs)" },
      { key: "hub_complete_eps", label: "hub completion", unit: "events/s" },
      { key: "participant_check_eps", label: "participant pipeline", unit: "events/s" },
      { key: "ratio", label: "hub completion / crypto ceiling", unit: "", target: { op: ">=", value: 0.6 }, reference: "the crypto ceiling above" },
      { key: "backend", label: "Ed25519 backend", unit: "" },
      { key: "noble_hub_complete_eps", label: "hub completion, @noble/ed25519", unit: "events/s" },
    ],
  },
  {
    name: "client",
    title: "Client-Server API",
    issue: 3,
    about:
      "The built server in its own process on loopback: 50 users in 10 rooms send messages while each holds a long-polling /sync. " +
      "Throughput is every user sending back to back; delivery is an open loop of 200 sends/s, send until the other members' syncs return it. " +
      "The figures are SQLite's (the last line); with PostgreSQL reachable, its line comes before it in the output.",
    figures: [
      { key: "engine", label: "database", unit: "" },
      { key: "sends_per_s", label: "sends", unit: "sends/s", target: { op: ">=", value: 1500 } },
      { key: "p50_send_ms", label: "send latency p50", unit: "ms" },
      { key: "p99_send_ms", label: "send latency p99", unit: "ms" },
      { key: "p99_delivery_ms", label: "delivery p99 at 200 sends/s", unit: "ms", target: { op: "<", value: 50 } },
      { key: "idle_rss_mb", label: "idle RSS", unit: "MB", target: { op: "<", value: 120 } },
      { key: "load_rss_mb", label: "RSS under load", unit: "MB" },
    ],
  },
  {
    name: "federation",
    title: "Federation",
    issue: 4,
    about:
      "Hub ingest: one participant sends 20,000 LPDUs in transactions of 50 to a hub on SQLite. Fan-out: 4,500 events of one room drained " +
      "to 415 destinations that acknowledge at once. Join: a room shaped like Matrix HQ (6,379 members, 10,684 state events), make_join + send_join + applying the state.",
    figures: [
      { key: "hub_ingest_eps", label: "hub ingest", unit: "events/s", target: { op: ">=", value: 2000 } },
      { key: "p50_lpdu_echo_ms", label: "LPDU to echo p50", unit: "ms" },
      { key: "p99_lpdu_echo_ms", label: "LPDU to echo p99", unit: "ms" },
      { key: "fanout_destinations", label: "fan-out destinations", unit: "" },
      { key: "fanout_events", label: "fan-out events", unit: "" },
      { key: "fanout_drain_s", label: "fan-out drain", unit: "s", target: { op: "<", value: 60 }, reference: "Synapse: about 2 hours (synapse issue 10257)" },
      { key: "join_state_events", label: "join: state events", unit: "" },
      { key: "join_s", label: "join", unit: "s", target: { op: "<", value: 5 }, reference: "Synapse: 30 s to 12 min" },
      { key: "join_response_mb", label: "join: send_join response", unit: "MB" },
      { key: "join_peak_rss_mb", label: "join: joining server's peak RSS", unit: "MB", target: { op: "<", value: 400 }, reference: "Synapse: about 1.2 GB" },
    ],
  },
  {
    name: "mls",
    title: "MLS overlay",
    issue: 5,
    about:
      "The hub's validation of one commit for groups of 100 and 1,000 devices against the client's own cost to create a commit, " +
      "accepted commits per second through the hub, key-package claims per second.",
    figures: [
      {
        key: "validate_commit_ms_100",
        label: "hub validates a commit, 100 devices",
        unit: "ms",
        target: { op: "<", figure: "client_commit_ms_100", text: "well below the client's commit cost" },
        reference: "the client's cost to create the commit (below)",
      },
      { key: "validate_commit_ms_1000", label: "hub validates a commit, 1,000 devices", unit: "ms" },
      { key: "client_commit_ms_100", label: "client creates a commit, 100 devices", unit: "ms" },
      { key: "commits_per_s", label: "accepted commits", unit: "commits/s" },
      { key: "claims_per_s", label: "key-package claims", unit: "claims/s" },
    ],
  },
  {
    name: "appservice",
    title: "Application services",
    issue: 6,
    about: "Sustained delivery to a bridge that acknowledges at once, and the time to drain a 10,000-event backlog after the bridge comes back.",
    figures: [
      { key: "events_per_s_to_bridge", label: "events to the bridge", unit: "events/s" },
      { key: "p99_event_to_bridge_ms", label: "event to bridge p99", unit: "ms" },
      { key: "backlog_drain_s_10000", label: "drain a 10,000-event backlog", unit: "s" },
    ],
  },
];
