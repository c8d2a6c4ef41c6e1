//! Private ClickHouse servers for tests and benchmarks, on loopback ports, killed when the
//! process ends (parent-death signal), their files in a temporary directory:
//!
//! - [`server`]: Debian's `clickhouse-server` (18.16);
//! - [`chdb_server`]: a current ClickHouse engine (PyPI `chdb`) behind a small HTTP shim that
//!   speaks what [`super::ClickHouseStore`] sends, so the same SQL is checked on both.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::time::Duration;

/// See [`server`].
pub struct LocalServer {
    /// Its HTTP interface.
    pub url: String,
}

/// A loopback port for a server to listen on (TCP and UDP): one that binds now, below the
/// kernel's ephemeral range (32768-60999 here), and never the same twice in a process. A port
/// the kernel picked (binding port 0) could be taken as the source port of any client
/// connection between this check and the server's own bind ("Address already in use", seen in
/// CI on 2026-11-26). Also for the other servers tests start (rsyslog).
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    const FIRST: u32 = 20_000;
    const COUNT: u32 = 12_000;
    static NEXT: AtomicU32 = AtomicU32::new(0);
    // Processes (test binaries run one after the other, benchmarks beside them) start apart.
    let start = std::process::id().wrapping_mul(7919) % COUNT;
    loop {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        assert!(n < COUNT, "no free loopback port in {FIRST}..{}", FIRST + COUNT);
        let port = (FIRST + (start + n) % COUNT) as u16;
        let tcp = std::net::TcpListener::bind(("127.0.0.1", port));
        if tcp.is_ok() && std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// A directory for one server's files, under `$TMPDIR/signet-local-servers/PID/`: the servers
/// live as long as the test process and are killed with it (nothing runs to remove their files
/// then), so the first call of a process removes what processes that have ended left behind.
fn server_dir() -> std::path::PathBuf {
    static SWEPT: std::sync::Once = std::sync::Once::new();
    let root = std::env::temp_dir().join("signet-local-servers");
    SWEPT.call_once(|| {
        for entry in std::fs::read_dir(&root).into_iter().flatten().flatten() {
            let pid = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok());
            if pid.is_some_and(|pid| !Path::new(&format!("/proc/{pid}")).exists()) {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    });
    let mine = root.join(std::process::id().to_string());
    std::fs::create_dir_all(&mine).expect("a directory for local servers");
    tempfile::tempdir_in(mine).expect("a temporary directory").keep()
}

/// Runs `command` from a thread that lives as long as the process (the parent-death signal is
/// sent when the spawning thread ends), output to `log`; returns its process id.
fn spawn_for_life(mut command: std::process::Command, log: &Path, what: &'static str) -> u32 {
    let log = std::fs::OpenOptions::new().create(true).append(true).open(log).expect("a log file");
    let (pid_tx, pid_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        if let Ok(out) = log.try_clone() {
            command.stdout(out).stderr(log);
        }
        // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
        unsafe {
            command.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let mut child = command.spawn().unwrap_or_else(|e| panic!("{what}: {e}"));
        let _ = pid_tx.send(child.id());
        let _ = child.wait();
    });
    pid_rx.recv().unwrap_or_else(|_| panic!("{what} did not start"))
}

/// Waits until `url` answers `SELECT 1` (on a thread of its own: the blocking HTTP client must
/// not be used or dropped on an async thread, and callers may be one).
fn wait_ready(url: &str, log: &Path) {
    std::thread::scope(|scope| {
        scope.spawn(|| {
            let deadline = std::time::Instant::now() + Duration::from_secs(60);
            let client = reqwest::blocking::Client::new();
            let ready = || client.get(format!("{url}/?query=SELECT%201")).send().is_ok_and(|r| r.status().is_success());
            while !ready() {
                assert!(std::time::Instant::now() < deadline, "{url} did not start: {}", log.display());
                std::thread::sleep(Duration::from_millis(100));
            }
        });
    });
}

/// The chdb shim of this process (started on first use; needs `python3` with `chdb`).
pub fn chdb_server() -> &'static LocalServer {
    static SERVER: std::sync::OnceLock<LocalServer> = std::sync::OnceLock::new();
    SERVER.get_or_init(|| {
        let port = free_port();
        let dir = server_dir();
        let script = dir.join("chdb_http.py");
        std::fs::write(&script, include_str!("chdb_http.py")).expect("the shim");
        let mut command = std::process::Command::new("python3");
        command.arg(&script).arg(port.to_string()).arg(dir.join("chdb")).current_dir(&dir);
        let log = dir.join("chdb.log");
        spawn_for_life(command, &log, "python3 with chdb (PyPI chdb)");
        let url = format!("http://127.0.0.1:{port}");
        wait_ready(&url, &log);
        LocalServer { url }
    })
}

/// Debian's `clickhouse-server` (on the PATH) for this process, started on first use.
pub fn server() -> &'static LocalServer {
    static SERVER: std::sync::OnceLock<OwnedServer> = std::sync::OnceLock::new();
    &SERVER.get_or_init(OwnedServer::start).server
}

/// A `clickhouse-server` of one's own, which a test may kill and start again (same files, same
/// ports).
pub struct OwnedServer {
    pub server: LocalServer,
    dir: std::path::PathBuf,
    pid: std::sync::Mutex<Option<u32>>,
}

impl OwnedServer {
    pub fn start() -> OwnedServer {
        OwnedServer::start_with(free_port(), free_port(), "")
    }

    /// A server on the given ports with `extra` in its `config.xml` (cluster settings).
    fn start_with(http: u16, tcp: u16, extra: &str) -> OwnedServer {
        let dir = server_dir();
        let path = dir.display();
        let config = format!(
            "<yandex>\n<logger><level>warning</level><console>true</console></logger>\n\
             <http_port>{http}</http_port><tcp_port>{tcp}</tcp_port><listen_host>127.0.0.1</listen_host>\n\
             <path>{path}/data/</path><tmp_path>{path}/tmp/</tmp_path>\n\
             <users_config>{path}/users.xml</users_config>\n\
             <default_profile>default</default_profile><default_database>default</default_database>\n\
             <mark_cache_size>268435456</mark_cache_size>\n{extra}</yandex>\n"
        );
        let users = "<yandex><profiles><default/></profiles><users><default><password/><networks><ip>127.0.0.1</ip>\
                     </networks><profile>default</profile><quota>default</quota></default></users><quotas><default/>\
                     </quotas></yandex>";
        std::fs::write(dir.join("config.xml"), config).expect("config.xml");
        std::fs::write(dir.join("users.xml"), users).expect("users.xml");
        let owned = OwnedServer {
            server: LocalServer { url: format!("http://127.0.0.1:{http}") },
            dir,
            pid: std::sync::Mutex::new(None),
        };
        owned.run();
        owned
    }

    fn run(&self) {
        let mut command = std::process::Command::new("clickhouse-server");
        command.arg(format!("--config-file={}", self.dir.join("config.xml").display()));
        let log = self.dir.join("server.log");
        let pid = spawn_for_life(command, &log, "clickhouse-server (Debian package clickhouse-server)");
        *self.pid.lock().expect("pid") = Some(pid);
        wait_ready(&self.server.url, &log);
    }

    /// Kills the server (SIGKILL) and waits until its port is closed.
    pub fn kill(&self) {
        let Some(pid) = self.pid.lock().expect("pid").take() else { return };
        // SAFETY: a plain kill(2) of our own child.
        unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        let address = self.server.url.trim_start_matches("http://").to_string();
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(&address).is_ok() {
            assert!(std::time::Instant::now() < deadline, "clickhouse-server {pid} did not stop");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Starts it again on the same files and ports.
    pub fn restart(&self) {
        self.kill();
        self.run();
    }
}

impl Drop for OwnedServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A ZooKeeper (Debian `zookeeperd`) and a ClickHouse cluster named [`LocalCluster::NAME`] of
/// three servers: shard 1 with two replicas (`servers[0]`, `servers[1]`), shard 2 with one
/// (`servers[2]`). Started on first use, for this process.
pub struct LocalCluster {
    pub servers: Vec<OwnedServer>,
}

impl LocalCluster {
    pub const NAME: &'static str = "signet_test";

    /// A cluster of one's own (its own ZooKeeper and servers): for a test that kills a server,
    /// which would stall the distributed DDL of every other test on a shared cluster.
    pub fn start() -> LocalCluster {
        let zookeeper = zookeeper();
        let ports: Vec<(u16, u16, u16)> = (0..3).map(|_| (free_port(), free_port(), free_port())).collect();
        let replica = |i: usize| format!("<replica><host>127.0.0.1</host><port>{}</port></replica>", ports[i].1);
        let remote = format!(
            "<remote_servers><{name}><shard><internal_replication>true</internal_replication>{}{}</shard>\
             <shard><internal_replication>true</internal_replication>{}</shard></{name}></remote_servers>",
            replica(0),
            replica(1),
            replica(2),
            name = LocalCluster::NAME
        );
        let servers = [("01", "r1"), ("01", "r2"), ("02", "r1")]
            .iter()
            .zip(&ports)
            .map(|((shard, replica), (http, tcp, interserver))| {
                let extra = format!(
                    "<zookeeper><node><host>127.0.0.1</host><port>{zookeeper}</port></node></zookeeper>\n\
                     <macros><shard>{shard}</shard><replica>{replica}</replica></macros>\n\
                     <interserver_http_port>{interserver}</interserver_http_port>\
                     <interserver_http_host>127.0.0.1</interserver_http_host>\n\
                     <distributed_ddl><path>/clickhouse/task_queue/ddl</path></distributed_ddl>\n{remote}\n"
                );
                OwnedServer::start_with(*http, *tcp, &extra)
            })
            .collect();
        LocalCluster { servers }
    }
}

/// The cluster this process's tests share, started on first use.
pub fn cluster() -> &'static LocalCluster {
    static CLUSTER: std::sync::OnceLock<LocalCluster> = std::sync::OnceLock::new();
    CLUSTER.get_or_init(LocalCluster::start)
}

/// A private ZooKeeper on a loopback port; returns the port.
fn zookeeper() -> u16 {
    let port = free_port();
    let dir = server_dir();
    let config = dir.join("zoo.cfg");
    std::fs::write(
        &config,
        format!(
            "tickTime=500\ndataDir={}/data\nclientPort={port}\nclientPortAddress=127.0.0.1\n\
             admin.enableServer=false\n4lw.commands.whitelist=srvr\n",
            dir.display()
        ),
    )
    .expect("zoo.cfg");
    let mut command = std::process::Command::new("/usr/share/zookeeper/bin/zkServer.sh");
    command
        .arg("start-foreground")
        .arg(&config)
        .env("ZOOCFGDIR", &dir)
        .env("ZOO_LOG_DIR", &dir)
        .env("JVMFLAGS", "-Xmx256m");
    let log = dir.join("zookeeper.log");
    spawn_for_life(command, &log, "ZooKeeper (Debian package zookeeperd)");
    // An open port is not enough: ZooKeeper accepts connections before it serves, and
    // ClickHouse 18.16 crashes when its first handshake fails (seen in CI). `srvr` answers with
    // the server's mode only once it serves.
    let serving = || -> std::io::Result<bool> {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", port))?;
        stream.set_read_timeout(Some(Duration::from_secs(2)))?;
        stream.write_all(b"srvr")?;
        let mut answer = String::new();
        stream.read_to_string(&mut answer)?;
        Ok(answer.contains("Mode:"))
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !serving().unwrap_or(false) {
        assert!(std::time::Instant::now() < deadline, "ZooKeeper did not start: {}", log.display());
        std::thread::sleep(Duration::from_millis(100));
    }
    port
}
