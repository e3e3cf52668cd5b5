//! A throwaway PostgreSQL server for tests and benchmarks: the
//! distribution's binaries (`scripts/setup.sh` installs them), a fresh
//! cluster in a temporary directory, listening on a free loopback port and
//! a socket in that directory, stopped (`-m immediate`) and removed on
//! drop. `initdb` refuses to run as root, so as root the cluster belongs to
//! the `postgres` user.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A running PostgreSQL server of its own.
#[derive(Debug)]
pub struct Postgres {
    bin: PathBuf,
    dir: tempfile::TempDir,
    port: u16,
    as_postgres: bool,
}

type Failed = Box<dyn std::error::Error + Send + Sync>;

/// The directory of the newest PostgreSQL server binaries installed
/// (`WEFT_PG_BIN` overrides).
pub fn bin_dir() -> Result<PathBuf, Failed> {
    if let Some(dir) = std::env::var_os("WEFT_PG_BIN").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(dir));
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .map_err(|_| "PostgreSQL is not installed: run scripts/setup.sh (it installs the `postgresql` package), or set WEFT_PG_BIN")?
        .filter_map(|e| {
            let e = e.ok()?;
            let v = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("pg_ctl").exists().then_some((v, bin))
        })
        .collect();
    versions.sort();
    versions
        .pop()
        .map(|(_, b)| b)
        .ok_or_else(|| "no PostgreSQL server binaries under /usr/lib/postgresql".into())
}

fn free_port() -> Result<u16, Failed> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn is_root() -> bool {
    // The effective uid, read without unsafe code.
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|u| u == "0"))
        })
        .unwrap_or(false)
}

impl Postgres {
    /// Creates a cluster and starts it; the database `weft` exists.
    pub fn start() -> Result<Postgres, Failed> {
        let bin = bin_dir()?;
        let dir = tempfile::Builder::new().prefix("weft-pg-").tempdir()?;
        let as_postgres = is_root();
        if as_postgres {
            let status = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path())
                .status()?;
            if !status.success() {
                return Err("cannot give the cluster directory to the postgres user".into());
            }
        }
        let pg = Postgres {
            bin,
            port: free_port()?,
            dir,
            as_postgres,
        };
        pg.tool(
            "initdb",
            &[
                "-D",
                &pg.data().display().to_string(),
                "-A",
                "trust",
                "-U",
                "weft",
                "--no-sync",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
            ],
        )?;
        pg.ctl_start()?;
        pg.tool(
            "createdb",
            &[
                "-h",
                "127.0.0.1",
                "-p",
                &pg.port.to_string(),
                "-U",
                "weft",
                "weft",
            ],
        )?;
        Ok(pg)
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Runs one of the server's tools, as `postgres` when we are root.
    fn tool(&self, name: &str, args: &[&str]) -> Result<(), Failed> {
        let exe = self.bin.join(name);
        let mut cmd = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&exe);
            c
        } else {
            Command::new(&exe)
        };
        let out = cmd.args(args).current_dir(self.dir.path()).output()?;
        if !out.status.success() {
            return Err(format!(
                "{name} failed: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )
            .into());
        }
        Ok(())
    }

    fn ctl_start(&self) -> Result<(), Failed> {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=on -c synchronous_commit=on \
             -c max_connections=200",
            self.port,
            self.dir.path().display()
        );
        self.tool(
            "pg_ctl",
            &[
                "-D",
                &self.data().display().to_string(),
                "-o",
                &options,
                "-l",
                &self.dir.path().join("log").display().to_string(),
                "-w",
                "start",
            ],
        )
    }

    /// Stops the server at once (as a crash would), then starts it again on
    /// the same port.
    pub fn restart(&self) -> Result<(), Failed> {
        self.stop()?;
        self.ctl_start()
    }

    /// Stops the server at once, as a crash would.
    pub fn stop(&self) -> Result<(), Failed> {
        self.tool(
            "pg_ctl",
            &[
                "-D",
                &self.data().display().to_string(),
                "-m",
                "immediate",
                "-w",
                "stop",
            ],
        )
    }

    /// The URL of database `db`.
    pub fn url(&self, db: &str) -> String {
        format!("postgres://weft@127.0.0.1:{}/{db}", self.port)
    }

    /// Creates database `db` (empty: no weft schema yet).
    pub fn create_db(&self, db: &str) -> Result<String, Failed> {
        self.tool(
            "createdb",
            &[
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "weft",
                db,
            ],
        )?;
        Ok(self.url(db))
    }

    /// Runs SQL against `db` with psql, returning its unaligned output.
    pub fn psql(&self, db: &str, sql: &str) -> Result<String, Failed> {
        let exe = self.bin.join("psql");
        let out = Command::new(exe)
            .args(["-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1"])
            .args([
                "-p",
                &self.port.to_string(),
                "-U",
                "weft",
                "-d",
                db,
                "-c",
                sql,
            ])
            .output()?;
        if !out.status.success() {
            return Err(format!("psql: {}", String::from_utf8_lossy(&out.stderr)).into());
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}
