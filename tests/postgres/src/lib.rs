//! A private PostgreSQL server for tests and benchmarks: `initdb` into a fresh directory, started
//! with `pg_ctl` on a free loopback port (as the `postgres` user when run as root, since
//! `initdb` refuses root), a database per test, stopped by its PID. Nothing assumes a server is
//! running; the machine needs PostgreSQL's server binaries (`/usr/lib/postgresql/*/bin`, or
//! `PG_BIN`), which `scripts/test` installs from Debian when they are missing.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A PostgreSQL server this process started.
pub struct PgServer {
    bin: PathBuf,
    dir: PathBuf,
    port: u16,
    /// Run its commands as the `postgres` user (this process is root).
    as_postgres: bool,
    /// Server settings beyond the test defaults (`-c name=value` each).
    settings: Vec<String>,
}

/// Databases made by this process, for unique names.
static DATABASES: AtomicUsize = AtomicUsize::new(0);

impl PgServer {
    /// One server for the whole process, started on first use and stopped (its directory
    /// removed) shortly after the process exits, by a watchdog that waits for it.
    pub fn shared() -> &'static PgServer {
        static SHARED: OnceLock<PgServer> = OnceLock::new();
        SHARED.get_or_init(|| {
            let server = PgServer::start("shared");
            server.stop_when_this_process_exits();
            server
        })
    }

    /// A server of its own (for a test that stops and restarts it); stopped when dropped.
    pub fn start(name: &str) -> PgServer {
        PgServer::start_with(name, &[])
    }

    /// [`PgServer::start`] with more settings, `name=value` each (e.g.
    /// `shared_preload_libraries=pg_stat_statements`).
    pub fn start_with(name: &str, settings: &[&str]) -> PgServer {
        let bin = server_binaries();
        let as_postgres = is_root();
        static STARTED: AtomicUsize = AtomicUsize::new(0);
        let unique = STARTED.fetch_add(1, Ordering::Relaxed);
        // Under /tmp, which the postgres user can reach (a root-owned target directory is not).
        let dir = std::env::temp_dir().join(format!("hookflow-pg-{name}-{}-{unique}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("data")).unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
        if as_postgres {
            run(Command::new("chown").args(["-R", "postgres:postgres"]).arg(&dir));
        }
        let settings = settings.iter().map(|setting| format!("-c {setting}")).collect();
        let server = PgServer { bin, dir, port: free_port(), as_postgres, settings };
        let data = server.data_dir();
        run(server
            .command("initdb")
            .args(["--auth=trust", "--username=postgres", "--no-sync", "--encoding=UTF8", "--locale=C", "-D"])
            .arg(&data));
        server.start_again();
        server
    }

    /// Starts the server (again, after a stop), waiting until it accepts connections.
    pub fn start_again(&self) {
        let options = format!(
            "-c listen_addresses=127.0.0.1 -c port={} -c unix_socket_directories={} -c max_connections=300 \
             -c shared_buffers=64MB -c log_min_messages=warning {}",
            self.port,
            self.dir.display(),
            self.settings.join(" ")
        );
        run(self
            .command("pg_ctl")
            .arg("-D")
            .arg(self.data_dir())
            .arg("-l")
            .arg(self.dir.join("server.log"))
            .args(["-w", "-t", "60", "-o", &options, "start"]));
    }

    /// Stops the server the way a crash would (`pg_ctl stop -m immediate`): no checkpoint, the
    /// next start recovers from the write-ahead log.
    pub fn stop_immediate(&self) {
        run(self.command("pg_ctl").arg("-D").arg(self.data_dir()).args(["-m", "immediate", "-w", "stop"]));
    }

    /// The postmaster's PID.
    pub fn pid(&self) -> Option<u32> {
        let pid_file = std::fs::read_to_string(self.data_dir().join("postmaster.pid")).ok()?;
        pid_file.lines().next()?.trim().parse().ok()
    }

    /// The URL of `database` on this server.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A new, empty database (named after `name`), and its URL.
    pub fn fresh_database(&self, name: &str) -> String {
        let unique = DATABASES.fetch_add(1, Ordering::Relaxed);
        let clean: String = name
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '_' })
            .take(40)
            .collect();
        let database = format!("t{}_{unique}_{clean}", std::process::id());
        run(Command::new(self.bin.join("createdb")).args([
            "-h",
            "127.0.0.1",
            "-p",
            &self.port.to_string(),
            "-U",
            "postgres",
            &database,
        ]));
        self.url(&database)
    }

    /// Runs SQL on `database` with `psql`, returning what it printed (unaligned, tuples only).
    pub fn psql(&self, database: &str, sql: &str) -> String {
        let output = Command::new(self.bin.join("psql"))
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
                "-d",
                database,
                "-XAtq",
                "-c",
                sql,
            ])
            .output()
            .unwrap_or_else(|e| panic!("cannot run psql: {e}"));
        assert!(output.status.success(), "psql {sql:?}: {}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8_lossy(&output.stdout).trim().to_string()
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// A command of the server's binaries, as the postgres user when this process is root.
    fn command(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        if self.as_postgres {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(path);
            command
        } else {
            Command::new(path)
        }
    }

    /// A detached shell that waits for this process to exit, then stops the server and removes
    /// its directory (statics are never dropped).
    fn stop_when_this_process_exits(&self) {
        let stop = format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 0.5; done; {pg_ctl} -D '{data}' -m immediate -w stop; rm -rf '{dir}'",
            pid = std::process::id(),
            pg_ctl = self.shell_command("pg_ctl"),
            data = self.data_dir().display(),
            dir = self.dir.display(),
        );
        // A session of its own, so that whatever ends this process's group spares it.
        let spawned = Command::new("setsid")
            .args(["sh", "-c", &stop])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        if let Err(error) = spawned {
            eprintln!("hookflow-test-postgres: cannot start the watchdog that stops the server: {error}");
        }
    }

    fn shell_command(&self, program: &str) -> String {
        let path = self.bin.join(program);
        if self.as_postgres {
            format!("runuser -u postgres -- '{}'", path.display())
        } else {
            format!("'{}'", path.display())
        }
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        if let Some(pid) = self.pid() {
            let _ = Command::new("kill").args(["-QUIT", &pid.to_string()]).status();
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
            while Path::new(&format!("/proc/{pid}")).exists() && std::time::Instant::now() < deadline {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Where PostgreSQL's server binaries are: `PG_BIN`, else the newest `/usr/lib/postgresql/*/bin`.
fn server_binaries() -> PathBuf {
    if let Some(bin) = std::env::var_os("PG_BIN") {
        return PathBuf::from(bin);
    }
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let version = entry.file_name().to_string_lossy().parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, bin)| bin).unwrap_or_else(|| {
        panic!(
            "no PostgreSQL server binaries under /usr/lib/postgresql/*/bin (install Debian's postgresql, or set PG_BIN)"
        )
    })
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|output| output.stdout.trim_ascii() == b"0")
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("no free port: {e}"));
    listener.local_addr().map(|address| address.port()).unwrap_or_else(|e| panic!("no free port: {e}"))
}

fn run(command: &mut Command) {
    let output = command.output().unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
    assert!(
        output.status.success(),
        "{command:?} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
