//! A private PostgreSQL server on a free loopback port, for tests that stop, crash or
//! restart a server (never the shared one).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::net::free_port;

pub(crate) fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// `PG_BIN`, else the newest `/usr/lib/postgresql/*/bin`.
pub fn pg_bin() -> PathBuf {
    if let Ok(bin) = std::env::var("PG_BIN") {
        return PathBuf::from(bin);
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL binaries: set PG_BIN or install the postgresql package")
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let v = e.file_name().to_string_lossy().parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("pg_ctl").exists().then_some((v, bin))
        })
        .collect();
    versions.sort();
    versions
        .pop()
        .map(|(_, b)| b)
        .expect("no /usr/lib/postgresql/*/bin/pg_ctl: set PG_BIN or install postgresql")
}

/// A PostgreSQL server of the test's own, on a free loopback port, in a temporary directory.
/// Stopped (immediately) on drop, also when the test panics.
#[derive(Debug)]
pub struct PrivatePg {
    dir: tempfile::TempDir,
    bin: PathBuf,
    as_postgres: bool,
    /// The port it listens on.
    pub port: u16,
    /// The superuser's password, when password authentication is on.
    pub password: Option<String>,
}

impl PrivatePg {
    /// initdb + start. With a password, TCP logins need it (scram-sha-256).
    pub fn start(password: Option<&str>) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("ordermeta-pg-")
            .tempdir()
            .expect("tempdir");
        let as_postgres = is_root();
        if as_postgres {
            // PostgreSQL refuses to run as root: the data directory belongs to `postgres`.
            let st = Command::new("chown")
                .args(["postgres:postgres"])
                .arg(dir.path())
                .status()
                .expect("chown");
            assert!(st.success(), "chown postgres {:?}", dir.path());
        }
        let pg = PrivatePg {
            bin: pg_bin(),
            as_postgres,
            port: 0,
            password: password.map(str::to_owned),
            dir,
        };
        let mut args: Vec<String> = vec![
            "-D".into(),
            pg.data().display().to_string(),
            "-U".into(),
            "postgres".into(),
            "-E".into(),
            "UTF8".into(),
            "--no-sync".into(),
            "--auth-local=trust".into(),
        ];
        match password {
            Some(pw) => {
                let pwfile = pg.dir.path().join("pwfile");
                std::fs::write(&pwfile, pw).expect("pwfile");
                pg.chown(&pwfile);
                args.push("--auth-host=scram-sha-256".into());
                args.push(format!("--pwfile={}", pwfile.display()));
            }
            None => args.push("--auth-host=trust".into()),
        }
        pg.run("initdb", &args);
        let mut pg = pg;
        pg.port = free_port();
        pg.start_again();
        pg
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn chown(&self, path: &Path) {
        if self.as_postgres {
            let st = Command::new("chown")
                .arg("postgres:postgres")
                .arg(path)
                .status()
                .expect("chown");
            assert!(st.success());
        }
    }

    fn run(&self, prog: &str, args: &[String]) {
        let path = self.bin.join(prog);
        let mut cmd = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&path);
            c
        } else {
            Command::new(&path)
        };
        let out = cmd.args(args).output().expect("run a PostgreSQL binary");
        assert!(
            out.status.success(),
            "{prog} {args:?} failed: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Starts the (stopped) server again on the same port and data, waiting until it accepts.
    pub fn start_again(&self) {
        let opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c max_connections=60",
            self.port,
            self.dir.path().display()
        );
        self.run(
            "pg_ctl",
            &[
                "-D".into(),
                self.data().display().to_string(),
                "-l".into(),
                self.dir.path().join("server.log").display().to_string(),
                "-w".into(),
                "-t".into(),
                "60".into(),
                "-o".into(),
                opts,
                "start".into(),
            ],
        );
    }

    /// Stops the server: `immediate` is a crash (recovery from WAL at the next start).
    pub fn stop(&self, mode: &str) {
        self.run(
            "pg_ctl",
            &[
                "-D".into(),
                self.data().display().to_string(),
                "-w".into(),
                "-m".into(),
                mode.into(),
                "stop".into(),
            ],
        );
    }

    /// URL for `user` (with `password`, if any) on database `postgres`.
    pub fn url_as(&self, user: &str, password: Option<&str>) -> String {
        match password {
            Some(pw) => format!("postgres://{user}:{pw}@127.0.0.1:{}/postgres", self.port),
            None => format!("postgres://{user}@127.0.0.1:{}/postgres", self.port),
        }
    }

    /// The superuser's URL.
    pub fn url(&self) -> String {
        self.url_as("postgres", self.password.as_deref())
    }
}

impl Drop for PrivatePg {
    fn drop(&mut self) {
        let path = self.bin.join("pg_ctl");
        let data = self.data();
        let mut cmd = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&path);
            c
        } else {
            Command::new(&path)
        };
        // Already stopped is fine; nothing else can be done about a failure here.
        let _ = cmd
            .arg("-D")
            .arg(&data)
            .args(["-m", "immediate", "stop"])
            .output();
    }
}
