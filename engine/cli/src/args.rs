//! The command line, as clap sees it.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "weft",
    version,
    about = "Run processes whose steps are WebAssembly adapters"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// How logs (stderr) look: `human`, or `json` (one object per line,
    /// with the span of the transition or invocation it happened in).
    #[arg(long, global = true, default_value = "human", value_parser = ["human", "json"])]
    pub log_format: String,
    /// Export spans (one per transition and per invocation) over OTLP/HTTP
    /// to this collector, e.g. `http://127.0.0.1:4318` (they go to
    /// `<url>/v1/traces`, as JSON).
    #[arg(long, global = true, value_name = "URL")]
    pub otlp_endpoint: Option<String>,
}

#[derive(Debug, Args)]
pub struct DataDir {
    /// Where instances, history and deployed plugins are kept.
    #[arg(
        long = "data",
        alias = "data-dir",
        value_name = "DIR",
        default_value = "weft-data"
    )]
    pub dir: PathBuf,
}

#[derive(Debug, Args)]
pub struct Definition {
    /// The process file (YAML, or JSON when named .json).
    pub process: PathBuf,
    /// The bindings file: which plugin carries out each action.
    #[arg(long, value_name = "FILE")]
    pub bindings: PathBuf,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check a process and its bindings; list every problem as file:line:col.
    Validate {
        #[command(flatten)]
        def: Definition,
        /// Where registered plugins are found, when the bindings name some
        /// (`payments@2`).
        #[command(flatten)]
        data: DataDir,
        /// Treat warnings (what the process may do that it should not) as
        /// errors.
        #[arg(long)]
        strict: bool,
        /// Print what can happen at this state: its events, where they
        /// lead, how long it can take.
        #[arg(long, value_name = "STATE")]
        explain: Option<String>,
    },
    /// The plugin registry, one action invoked once, and new adapter
    /// projects.
    Plugin {
        #[command(subcommand)]
        command: PluginCommand,
    },
    /// Print the JSON Schema of process or bindings files (for editors:
    /// the same as schema/*.schema.json).
    Schema {
        /// `process` or `bindings`.
        #[arg(value_parser = ["process", "bindings"])]
        of: String,
    },
    /// Run a process's test cases on a simulated clock against scripted
    /// adapter answers (no engine, no plugins); exit 1 when a case fails.
    Test {
        /// The process file.
        process: PathBuf,
        /// Case files (default: cases.yaml beside the process).
        cases: Vec<PathBuf>,
        /// Bindings whose retry and timeout defaults apply (plugins are
        /// not loaded).
        #[arg(long, value_name = "FILE")]
        bindings: Option<PathBuf>,
        /// Also write the results as JUnit XML.
        #[arg(long, value_name = "FILE")]
        junit: Option<PathBuf>,
        /// Instead of running cases, print one (JSON) recorded from this
        /// instance's history: its adapter answers, signals and
        /// completions, and how it ended.
        #[arg(long, value_name = "ID_OR_KEY")]
        record: Option<String>,
        #[command(flatten)]
        data: DataDir,
    },
    /// Run a process many times against adapters that fail at random with
    /// a given mix, and print the spread of outcomes (same seed, same
    /// report).
    Simulate {
        /// The process file.
        process: PathBuf,
        /// Bindings whose retry and timeout defaults apply.
        #[arg(long, value_name = "FILE")]
        bindings: Option<PathBuf>,
        /// The fault mix per action (YAML or JSON).
        #[arg(long, value_name = "FILE")]
        faults: PathBuf,
        /// Every run's input: a JSON object.
        #[arg(long, value_name = "JSON", default_value = "{}")]
        input: String,
        #[arg(long, default_value_t = 1000)]
        runs: u32,
        #[arg(long, default_value_t = 7)]
        seed: u64,
    },
    /// Check a process and its bindings, then store them (and the plugins)
    /// for instances to use: new ones, and running ones from their next step.
    Deploy {
        #[command(flatten)]
        def: Definition,
        #[command(flatten)]
        data: DataDir,
    },
    /// Deploy a process, start one instance and follow it until it ends or
    /// waits.
    Run {
        #[command(flatten)]
        def: Definition,
        /// The instance's input: a JSON object.
        #[arg(long, value_name = "JSON", default_value = "{}")]
        input: String,
        /// A business key, unique per process: if an instance was already
        /// started with it, that one is followed instead of starting another.
        #[arg(long, value_name = "KEY")]
        key: Option<String>,
        #[command(flatten)]
        data: DataDir,
    },
    /// Start an instance of a deployed process (the newest version unless
    /// --version pins one) and follow it until it ends or waits.
    Start {
        /// The process name.
        process: String,
        #[arg(long, value_name = "JSON", default_value = "{}")]
        input: String,
        #[arg(long, value_name = "KEY")]
        key: Option<String>,
        /// Start this deployed version instead of the newest.
        #[arg(long, value_name = "N")]
        version: Option<u32>,
        #[command(flatten)]
        data: DataDir,
    },
    /// Send an event to a waiting instance (by id, or by business key).
    Signal {
        /// An instance id, or the business key it was started with.
        target: String,
        /// The event, one of those its wait state accepts.
        event: String,
        /// The event's payload, a JSON value stored as the wait state says.
        #[arg(long = "data", value_name = "JSON", default_value = "{}")]
        payload: String,
        /// Where instances are kept (`--data` is the payload here).
        #[arg(long = "data-dir", value_name = "DIR", default_value = "weft-data")]
        dir: PathBuf,
    },
    /// Move an instance to another deployed version of its process.
    Migrate {
        /// An instance id, or the business key it was started with.
        target: String,
        /// The version to move it to.
        #[arg(long = "to", value_name = "VERSION")]
        to: u32,
        #[command(flatten)]
        data: DataDir,
    },
    /// Run the engine until stopped: resume unfinished instances, fire
    /// timers and cron schedules, take operator requests from other weft
    /// commands.
    Serve {
        #[command(flatten)]
        data: DataDir,
        #[command(flatten)]
        http: Listen,
        /// A directory of adapter components (`<plugin>.wasm` or
        /// `weft_<plugin>.wasm`) to watch, with --watch.
        #[arg(long, value_name = "DIR", requires = "watch")]
        plugins_dir: Option<PathBuf>,
        /// Swap in each component written into --plugins-dir for the plugin
        /// it is named after, after the checks `weft plugin swap` makes; a
        /// broken one is refused and logged, and the old one keeps serving.
        #[arg(long, requires = "plugins_dir")]
        watch: bool,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// The PostgreSQL store: its schema, and moving data between stores.
    Store {
        #[command(subcommand)]
        command: StoreCommand,
    },
    /// Draw a process as a state diagram (Mermaid or Graphviz DOT), with an
    /// instance's current state and path highlighted when given.
    Diagram {
        /// The process file; without it, the deployed version the
        /// instance runs.
        process: Option<PathBuf>,
        /// `mermaid` (default) or `dot`.
        #[arg(long, default_value = "mermaid")]
        format: String,
        /// An instance (id or business key) whose state and path to show.
        #[arg(long)]
        instance: Option<String>,
        #[command(flatten)]
        data: DataDir,
    },
    /// List instances, oldest first, a page at a time.
    List {
        #[command(flatten)]
        data: DataDir,
        /// Only instances of this process.
        #[arg(long)]
        process: Option<String>,
        /// Only instances with this status (running, waiting, parked,
        /// succeeded, failed, cancelled).
        #[arg(long)]
        status: Option<String>,
        /// Only instances in this state.
        #[arg(long)]
        state: Option<String>,
        /// Only unfinished instances past an sla (their process's or their
        /// current state's).
        #[arg(long)]
        stuck: bool,
        /// Instances per page (at most 1,000).
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// Where the previous page ended (the `next` it printed).
        #[arg(long)]
        cursor: Option<String>,
        /// Print JSON (`{"items": [...], "next": ...}`) instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show one instance.
    Status {
        id: String,
        #[command(flatten)]
        data: DataDir,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show an instance's history.
    History {
        id: String,
        #[command(flatten)]
        data: DataDir,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Pick up every unfinished instance (after a crash) and drive each until
    /// it ends, parks or waits.
    Resume {
        #[command(flatten)]
        data: DataDir,
    },
    /// Complete a step waiting on a token (an adapter answered `pending`).
    Complete {
        token: String,
        /// The step's result, as JSON.
        #[arg(
            long,
            value_name = "JSON",
            conflicts_with = "error",
            required_unless_present = "error"
        )]
        output: Option<String>,
        /// Fail the step with this error kind instead (routes as `error.<kind>`).
        #[arg(long, value_name = "KIND")]
        error: Option<String>,
        /// With --error: what went wrong.
        #[arg(long, value_name = "TEXT", default_value = "completed with an error")]
        message: String,
        #[command(flatten)]
        data: DataDir,
    },
    /// Report progress of a step waiting on a token.
    Heartbeat {
        token: String,
        /// Details handed to the next attempt if this one is lost.
        #[arg(long, default_value = "")]
        details: String,
        #[command(flatten)]
        data: DataDir,
    },
    /// Retry a parked instance from the step it stopped at.
    Redrive {
        id: String,
        #[command(flatten)]
        data: DataDir,
    },
    /// End an instance.
    Cancel {
        id: String,
        /// Undo its completed compensable steps first, newest first.
        #[arg(long)]
        compensate: bool,
        #[command(flatten)]
        data: DataDir,
    },
    /// Measure durable transitions per second, invocation latency, the memory
    /// of idle instances and the time to resume many.
    Bench(crate::commands::bench::BenchArgs),
}

/// The store a node runs on, when it is not the data directory's own.
#[derive(Debug, Clone, clap::Args)]
pub struct StoreArgs {
    /// Run on a PostgreSQL store shared with other weft nodes
    /// (`postgres://user@host:port/db`) instead of the data directory's
    /// embedded one; the data directory then keeps only this node's
    /// compiled components and server address. An empty database gets the
    /// schema; an older one needs `weft store migrate-schema`.
    #[arg(long = "store", env = "WEFT_STORE", value_name = "URL")]
    pub url: Option<String>,
    /// This node's name in the partition lease table, unique among live
    /// nodes (default: host-pid).
    #[arg(long, env = "WEFT_NODE", requires = "url")]
    pub node: Option<String>,
    /// How long a partition lease lasts without renewal, by the database's
    /// clock: a node that stops is taken over within about this long.
    #[arg(long, default_value = "10s", value_parser = parse_span)]
    pub lease_ttl: weft_model::Span,
    /// The URL other nodes reach this one's API at, to forward requests
    /// for the instances it drives (default: the address it listens on).
    #[arg(long, value_name = "URL", requires = "url")]
    pub advertise: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum StoreCommand {
    /// Create the weft schema in a PostgreSQL database, or upgrade it to
    /// this weft's version (run it before starting upgraded nodes).
    MigrateSchema {
        /// The database (`postgres://user@host:port/db`).
        #[arg(long = "store", env = "WEFT_STORE", value_name = "URL")]
        url: String,
        /// Partitions of a new schema: the most nodes that can share the
        /// work. Fixed once the schema exists.
        #[arg(long, default_value_t = weft_store_postgres::DEFAULT_PARTITIONS)]
        partitions: u32,
    },
    /// Copy everything a store holds — process versions, bindings
    /// revisions, plugins, the registry and swap log, instances with their
    /// history, outbox, results, timers and tokens — into an empty store:
    /// a data directory into PostgreSQL, or back. No engine may run on
    /// either meanwhile.
    Copy {
        /// A data directory, or a PostgreSQL URL.
        #[arg(long, value_name = "DIR|URL")]
        from: String,
        /// A new data directory, or an empty PostgreSQL database.
        #[arg(long, value_name = "DIR|URL")]
        to: String,
    },
}

/// Where and how `weft serve` answers HTTP.
#[derive(Debug, Clone, clap::Args)]
pub struct Listen {
    /// The address of the HTTP API (`127.0.0.1:0` picks a free port). An
    /// address other than loopback needs --token-file.
    #[arg(long, default_value = "127.0.0.1:7070")]
    pub listen: std::net::SocketAddr,
    /// A file holding the bearer token every API request must carry (owner
    /// read-only, like the server's address file).
    #[arg(long)]
    pub token_file: Option<PathBuf>,
    /// The largest request body accepted, in bytes.
    #[arg(long, default_value_t = 8 << 20)]
    pub max_body: usize,
    /// On Ctrl-C or SIGTERM: how long to let requests and invocations under
    /// way finish before stopping (what is cut off runs again at the next
    /// start).
    #[arg(long, default_value = "30s", value_parser = parse_span)]
    pub grace: weft_model::Span,
}

fn parse_percent(text: &str) -> Result<u8, String> {
    crate::commands::swap::percent(text)
}

fn parse_span(text: &str) -> Result<weft_model::Span, String> {
    weft_model::Span::parse(text).map_err(|e| e.to_string())
}

#[derive(Debug, Subcommand)]
pub enum PluginCommand {
    /// Register a component: it is loaded as the engine runs it and its
    /// manifest read; the same bytes again change nothing, other bytes make
    /// the name's next version.
    Add {
        file: PathBuf,
        /// The name to register it under (default: the file's, without
        /// `weft_`).
        #[arg(long)]
        name: Option<String>,
        #[command(flatten)]
        data: DataDir,
    },
    /// Every registered version of every plugin.
    List {
        #[command(flatten)]
        data: DataDir,
        #[arg(long)]
        json: bool,
    },
    /// A plugin (name, name@version or sha256): its manifest, size and the
    /// deployed processes whose bindings use it.
    Describe {
        plugin: String,
        #[command(flatten)]
        data: DataDir,
        #[arg(long)]
        json: bool,
    },
    /// Invoke one action once and print the outcome: exit 0 done, 1
    /// failed, 4 pending. It gets no grants but the hosts given with
    /// --allow-host.
    Call {
        /// A component file, or a registered name, name@version or sha256.
        plugin: String,
        action: String,
        /// The action's input: JSON.
        #[arg(long, value_name = "JSON", default_value = "{}")]
        input: String,
        /// The binding's config: JSON.
        #[arg(long, value_name = "JSON", default_value = "{}")]
        config: String,
        #[arg(long, default_value = "30s")]
        timeout: String,
        #[arg(long, default_value = "64MiB")]
        memory: String,
        /// Let it send HTTP requests to this host:port (repeatable).
        #[arg(long = "allow-host", value_name = "HOST:PORT")]
        allow_hosts: Vec<String>,
        /// Instructions it may execute (default: no limit).
        #[arg(long)]
        fuel: Option<u64>,
        #[command(flatten)]
        data: DataDir,
    },
    /// Replace the component behind an action (or every action bound to a
    /// plugin) on the running engine: it is loaded, described and checked
    /// against every binding it would serve first, and refused with the
    /// reason if it cannot serve one. Attempts under way finish on the
    /// component they started on; the next ones use the new one.
    Swap {
        /// `action:<name>`, `plugin:<name>`, or a bare name the deployed
        /// bindings use as one of the two.
        target: String,
        /// A component file (`.wasm`), or a registered name, name@version or
        /// sha256 digest.
        component: String,
        /// Put it on trial for this share of attempts (e.g. `10%`) instead of
        /// all of them; it is promoted or rolled back on its failure rate.
        #[arg(long, value_name = "PERCENT", value_parser = parse_percent)]
        canary: Option<u8>,
        /// Canary: successful attempts on it after which it is promoted.
        #[arg(long, value_name = "N", default_value_t = 100, requires = "canary")]
        promote_after: u32,
        /// Canary: roll it back when its failure rate is more than this many
        /// points above the live component's (e.g. `10%`).
        #[arg(long, value_name = "POINTS", default_value = "10", value_parser = parse_percent, requires = "canary")]
        threshold: u8,
        /// Canary: the most recent attempts of each side the rates are taken
        /// over.
        #[arg(long, value_name = "N", default_value_t = 100, requires = "canary")]
        window: u32,
        /// Canary: attempts it must have made before its rate can roll it
        /// back.
        #[arg(long, value_name = "N", default_value_t = 20, requires = "canary")]
        min_calls: u32,
        /// With a file: the registry name to add it under (default: the
        /// target's plugin).
        #[arg(long)]
        name: Option<String>,
        #[command(flatten)]
        data: DataDir,
        #[arg(long)]
        json: bool,
    },
    /// Undo the newest swap of a target still in force (back to what ran
    /// before it), or end its canary; again to go one swap further back.
    Rollback {
        target: String,
        #[command(flatten)]
        data: DataDir,
        #[arg(long)]
        json: bool,
    },
    /// Make the component on trial for a target live for every attempt.
    Promote {
        target: String,
        #[command(flatten)]
        data: DataDir,
        #[arg(long)]
        json: bool,
    },
    /// What runs each bound action now (with canaries under way and their
    /// counts), and the swaps, rollbacks and canary decisions so far.
    Versions {
        /// Only this target (`action:<name>`, `plugin:<name>` or a bare name).
        target: Option<String>,
        #[command(flatten)]
        data: DataDir,
        #[arg(long)]
        json: bool,
    },
    /// Create an adapter project (Rust, JavaScript or Python) that builds
    /// into a component and passes its own test as written.
    New {
        /// The adapter's name: lowercase letters, digits and `-`, starting
        /// with a letter, at most 40 characters.
        name: String,
        /// The language it is written in.
        #[arg(long, default_value = "rust", value_parser = ["rust", "js", "python"])]
        lang: String,
        /// Where to create it (default: `./<name>`); it must not exist, or be
        /// an empty directory.
        #[arg(long, value_name = "PATH")]
        dir: Option<PathBuf>,
    },
}
