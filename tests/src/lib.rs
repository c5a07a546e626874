//! Test support for the end-to-end tests of the cache workspace: real server processes on free loopback ports.
//!
//! Tests never touch a server the machine already runs (such as Redis on 127.0.0.1:6379): every server here is a
//! fresh process on a free port with its own temporary directory, killed when its handle drops. On Linux each
//! process also gets `PR_SET_PDEATHSIG = SIGKILL`, so it dies with the test binary even when the handle is never
//! dropped (statics such as [`shared_redis`]) or the test binary is killed.
//!
//! When a server binary is missing the constructors print a loud `SKIP:` line to stderr and return `None`, so a
//! developer without Redis can still run the rest of the suite; with `CI=true` they panic instead, because a CI
//! that silently skips its server tests proves nothing.
//!
//! ```no_run
//! # #[tokio::main]
//! # async fn main() {
//! let Some(redis) = test_support::RedisServer::start() else { return };
//! let backend = cachette::RedisBackend::builder().url(redis.url()).build().await.unwrap();
//! # let _ = backend;
//! # }
//! ```
//!
//! Adding another server (memcached, …) takes a [`ServerSpec`]: the binary, its arguments for a port and a data
//! directory, and a readiness probe; [`ServerProcess`] does the rest.

use std::ffi::OsString;
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

/// Builds a server's command-line arguments for a port and a data directory.
pub type ArgsFn = Box<dyn Fn(u16, &Path) -> Vec<OsString> + Send + Sync>;

/// How to run one kind of server.
///
/// # Example
/// ```no_run
/// use test_support::{ServerProcess, ServerSpec};
/// use std::time::Duration;
///
/// let spec = ServerSpec {
///     program: "memcached",
///     install_hint: "install memcached (apt-get install memcached)",
///     args: Box::new(|port, _dir| {
///         vec!["-p".into(), port.to_string().into(), "-l".into(), "127.0.0.1".into(), "-U".into(), "0".into()]
///     }),
///     ready: |port| test_support::tcp_accepts(port),
///     also_free: None,
///     startup_timeout: Duration::from_secs(10),
/// };
/// let memcached = ServerProcess::start(spec);
/// # let _ = memcached;
/// ```
pub struct ServerSpec {
    /// Binary name, looked up on `PATH`.
    pub program: &'static str,
    /// What to tell a developer who lacks the binary.
    pub install_hint: &'static str,
    /// Arguments for a port and a data directory.
    pub args: ArgsFn,
    /// Whether the server on this port answers (called repeatedly until it does or the timeout passes).
    pub ready: fn(u16) -> bool,
    /// Another port the server will bind, as an offset from its port (Redis Cluster's bus: +10000).
    pub also_free: Option<u16>,
    /// How long to wait for `ready`.
    pub startup_timeout: Duration,
}

/// A server process on a loopback port, killed (and reaped) on drop.
///
/// # Example
/// ```no_run
/// let Some(redis) = test_support::RedisServer::start() else { return };
/// let process: &test_support::ServerProcess = redis.process();
/// process.kill();
/// process.restart().unwrap();
/// ```
pub struct ServerProcess {
    spec: ServerSpec,
    port: u16,
    dir: tempfile::TempDir,
    child: Mutex<Option<Child>>,
}

impl std::fmt::Debug for ServerProcess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerProcess")
            .field("program", &self.spec.program)
            .field("port", &self.port)
            .field("dir", &self.dir.path())
            .finish_non_exhaustive()
    }
}

impl ServerProcess {
    /// Starts the server on a free port and waits until it is ready. `None` (after a `SKIP:` line on stderr) when
    /// the binary is missing; panics when it is missing under `CI=true` or when the server does not come up.
    ///
    /// # Example
    /// See [`ServerSpec`].
    pub fn start(spec: ServerSpec) -> Option<ServerProcess> {
        if !binary_available(spec.program) {
            skip_or_panic(spec.program, spec.install_hint);
            return None;
        }
        let dir = match tempfile::Builder::new()
            .prefix(&format!("cache-suite-{}-", spec.program))
            .tempdir()
        {
            Ok(dir) => dir,
            Err(e) => panic!(
                "cannot create a temporary directory for {}: {e}",
                spec.program
            ),
        };
        let mut last_error = None;
        // Another process can grab the free port between our probe and the server's bind; try a few ports.
        for _ in 0..5 {
            let port = free_port(spec.also_free);
            match launch(&spec, port, dir.path()) {
                Ok(child) => {
                    return Some(ServerProcess {
                        spec,
                        port,
                        dir,
                        child: Mutex::new(Some(child)),
                    })
                }
                Err(e) => last_error = Some(e),
            }
        }
        panic!(
            "{} did not start: {}",
            spec.program,
            last_error.map(|e| e.to_string()).unwrap_or_default()
        );
    }

    fn lock_child(&self) -> std::sync::MutexGuard<'_, Option<Child>> {
        // A panic while holding the lock leaves a valid Option<Child>; keep going.
        self.child.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The loopback port the server listens on.
    ///
    /// # Example
    /// ```no_run
    /// let Some(redis) = test_support::RedisServer::start() else { return };
    /// assert_ne!(redis.process().port(), 6379);
    /// ```
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's private data directory (its log file is there too).
    ///
    /// # Example
    /// ```no_run
    /// let Some(redis) = test_support::RedisServer::start() else { return };
    /// println!("logs in {}", redis.process().dir().display());
    /// ```
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Whether the process is running (it was started and neither killed nor exited).
    ///
    /// # Example
    /// ```no_run
    /// let Some(redis) = test_support::RedisServer::start() else { return };
    /// assert!(redis.process().is_running());
    /// ```
    pub fn is_running(&self) -> bool {
        match self.lock_child().as_mut() {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Kills the process now (SIGKILL, like a crash) and reaps it. Does nothing when it is not running.
    ///
    /// # Example
    /// ```no_run
    /// let Some(redis) = test_support::RedisServer::start() else { return };
    /// redis.process().kill();
    /// assert!(!redis.process().is_running());
    /// ```
    pub fn kill(&self) {
        if let Some(mut child) = self.lock_child().take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops the server without closing its sockets (`SIGSTOP`): connections stay open and requests get no
    /// answer, as with a hung or overloaded server. [`ServerProcess::resume`] continues it.
    ///
    /// # Example
    /// ```no_run
    /// let Some(memcached) = test_support::MemcachedServer::start() else { return };
    /// memcached.process().pause();
    /// memcached.process().resume();
    /// ```
    pub fn pause(&self) {
        self.signal(libc::SIGSTOP);
        // The signal is delivered asynchronously: wait until the kernel reports the process stopped, so no request
        // sent after `pause` returns is answered.
        let Some(pid) = self.lock_child().as_ref().map(|child| child.id()) else {
            return;
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(2);
        while std::time::Instant::now() < deadline {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            // `pid (comm) state …`: the state follows the last `)`.
            let state = stat
                .rsplit(')')
                .next()
                .and_then(|rest| rest.split_whitespace().next());
            if matches!(state, Some("T" | "t")) {
                return;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Continues a server stopped with [`ServerProcess::pause`] (`SIGCONT`).
    ///
    /// # Example
    /// See [`ServerProcess::pause`].
    pub fn resume(&self) {
        self.signal(libc::SIGCONT);
    }

    fn signal(&self, signal: libc::c_int) {
        if let Some(child) = self.lock_child().as_ref() {
            if let Ok(pid) = libc::pid_t::try_from(child.id()) {
                // SAFETY: `kill` only sends a signal; the pid is our own child, which we have not reaped.
                unsafe {
                    libc::kill(pid, signal);
                }
            }
        }
    }

    /// Starts the server again on the same port and data directory, waiting until it is ready. Kills the running
    /// process first, if any.
    ///
    /// # Example
    /// ```no_run
    /// let Some(redis) = test_support::RedisServer::start() else { return };
    /// redis.process().kill();
    /// redis.process().restart().expect("redis restarts");
    /// ```
    pub fn restart(&self) -> io::Result<()> {
        self.kill();
        // The old listening socket can linger for a moment after the kill; retry the bind for a short while.
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            match launch(&self.spec, self.port, self.dir.path()) {
                Ok(child) => {
                    *self.lock_child() = Some(child);
                    return Ok(());
                }
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    thread::sleep(Duration::from_millis(100));
                }
                Err(e) => return Err(e),
            }
        }
    }
}

/// Spawns the server of `spec` on `port` and waits until it is ready.
fn launch(spec: &ServerSpec, port: u16, dir: &Path) -> io::Result<Child> {
    let log_path = dir.join(format!("{}.log", spec.program));
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)?;
    let mut command = Command::new(spec.program);
    command
        .args((spec.args)(port, dir))
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::from(log.try_clone()?))
        .stderr(Stdio::from(log));
    let mut child = spawn_dying_with_parent(command)?;
    let deadline = Instant::now() + spec.startup_timeout;
    loop {
        if let Some(status) = child.try_wait()? {
            let log = std::fs::read_to_string(&log_path).unwrap_or_default();
            return Err(io::Error::other(format!(
                "{} exited with {status} on port {port}; log:\n{log}",
                spec.program
            )));
        }
        if (spec.ready)(port) {
            return Ok(child);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "{} on port {port} not ready after {:?}",
                    spec.program, spec.startup_timeout
                ),
            ));
        }
        thread::sleep(Duration::from_millis(20));
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Whether something accepts TCP connections on `127.0.0.1:port`.
///
/// # Example
/// ```
/// assert!(!test_support::tcp_accepts(1)); // port 1 is privileged and unused on test machines
/// ```
pub fn tcp_accepts(port: u16) -> bool {
    TcpStream::connect_timeout(&loopback(port), Duration::from_millis(200)).is_ok()
}

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, port))
}

/// A port nobody listens on right now; with `also_free`, `port + also_free` is free too (and exists).
fn free_port(also_free: Option<u16>) -> u16 {
    for _ in 0..100 {
        let Ok(listener) = TcpListener::bind(loopback(0)) else {
            continue;
        };
        let Ok(addr) = listener.local_addr() else {
            continue;
        };
        let port = addr.port();
        match also_free {
            None => return port,
            Some(offset) => {
                let Some(other) = port.checked_add(offset) else {
                    continue;
                };
                if TcpListener::bind(loopback(other)).is_ok() {
                    return port;
                }
            }
        }
    }
    panic!("no free loopback port found");
}

fn binary_available(program: &str) -> bool {
    let Some(path) = std::env::var_os("PATH") else {
        return false;
    };
    std::env::split_paths(&path).any(|dir| is_executable(&dir.join(program)))
}

fn is_executable(path: &PathBuf) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

fn skip_or_panic(program: &str, hint: &str) {
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{program} not found on PATH and CI=true: {hint}; server tests must not be skipped in CI");
    }
    // Straight to the stderr handle, not `eprintln!`: the test harness captures the print macros of passing tests,
    // and a skipped server test must be seen.
    let _ = writeln!(
        io::stderr(),
        "SKIP: {program} not found; {hint} to run this test"
    );
}

type SpawnRequest = (Command, mpsc::Sender<io::Result<Child>>);

/// Spawns `command` so that the child gets SIGKILL when the test binary dies.
///
/// `PR_SET_PDEATHSIG` fires when the *thread* that forked the child exits, not the process, and test threads come
/// and go; so every server is forked by one thread that lives as long as the test binary.
fn spawn_dying_with_parent(mut command: Command) -> io::Result<Child> {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::process::CommandExt;
        let parent = std::process::id();
        // SAFETY: the closure runs between fork and exec and only makes async-signal-safe calls (prctl, getppid).
        unsafe {
            command.pre_exec(move || {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) != 0 {
                    return Err(io::Error::last_os_error());
                }
                // The parent may have died before prctl took effect.
                if u32::try_from(libc::getppid()).ok() != Some(parent) {
                    return Err(io::Error::other("test binary exited during spawn"));
                }
                Ok(())
            });
        }
    }
    static SPAWNER: OnceLock<Mutex<mpsc::Sender<SpawnRequest>>> = OnceLock::new();
    let spawner = SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<SpawnRequest>();
        thread::Builder::new()
            .name("cache-suite-spawner".into())
            .spawn(move || {
                for (mut command, reply) in rx {
                    let _ = reply.send(command.spawn());
                }
            })
            .unwrap_or_else(|e| panic!("cannot start the spawner thread: {e}"));
        Mutex::new(tx)
    });
    let (reply_tx, reply_rx) = mpsc::channel();
    spawner
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .send((command, reply_tx))
        .map_err(|_| io::Error::other("spawner thread is gone"))?;
    reply_rx
        .recv()
        .map_err(|_| io::Error::other("spawner thread is gone"))?
}

/// Sends one command in RESP to `127.0.0.1:port` and returns the reply as text (simple string, error, integer or
/// bulk string; arrays are not decoded). For readiness probes and test assertions, not for production.
///
/// # Example
/// ```no_run
/// let Some(redis) = test_support::RedisServer::start() else { return };
/// assert_eq!(test_support::redis_command(redis.port(), &["PING"]).unwrap(), "PONG");
/// ```
pub fn redis_command(port: u16, args: &[&str]) -> io::Result<String> {
    let mut stream = TcpStream::connect_timeout(&loopback(port), Duration::from_millis(500))?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    stream.set_write_timeout(Some(Duration::from_secs(2)))?;
    let mut request = format!("*{}\r\n", args.len()).into_bytes();
    for arg in args {
        request.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        request.extend_from_slice(arg.as_bytes());
        request.extend_from_slice(b"\r\n");
    }
    stream.write_all(&request)?;
    let mut reply = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed",
            ));
        }
        reply.extend_from_slice(&buf[..n]);
        if let Some(text) = complete_reply(&reply) {
            return text;
        }
    }
}

/// Decodes a complete single RESP reply, `None` while more bytes are needed.
fn complete_reply(reply: &[u8]) -> Option<io::Result<String>> {
    let line_end = reply.windows(2).position(|w| w == b"\r\n")?;
    let line = String::from_utf8_lossy(&reply[1..line_end]).into_owned();
    match reply.first()? {
        b'+' | b':' => Some(Ok(line)),
        b'-' => Some(Err(io::Error::other(line))),
        b'$' => {
            let len: i64 = line.parse().ok()?;
            if len < 0 {
                return Some(Ok(String::new()));
            }
            let start = line_end + 2;
            let end = start + usize::try_from(len).ok()?;
            (reply.len() >= end + 2)
                .then(|| Ok(String::from_utf8_lossy(&reply[start..end]).into_owned()))
        }
        _ => Some(Ok(String::from_utf8_lossy(reply).into_owned())),
    }
}

fn redis_answers(port: u16) -> bool {
    redis_command(port, &["PING"]).is_ok_and(|r| r == "PONG")
}

const REDIS_HINT: &str = "install redis-server (apt-get install redis-server)";

fn redis_spec(extra: &'static [&'static str], also_free: Option<u16>) -> ServerSpec {
    ServerSpec {
        program: "redis-server",
        install_hint: REDIS_HINT,
        args: Box::new(move |port, dir| {
            let mut args: Vec<OsString> = vec![
                "--port".into(),
                port.to_string().into(),
                "--bind".into(),
                "127.0.0.1".into(),
                "--save".into(),
                "".into(),
                "--appendonly".into(),
                "no".into(),
                "--dir".into(),
                dir.as_os_str().to_owned(),
            ];
            for arg in extra {
                let arg = arg
                    .replace("{port}", &port.to_string())
                    .replace("{dir}", &dir.to_string_lossy());
                args.push(arg.into());
            }
            args
        }),
        ready: redis_answers,
        also_free,
        startup_timeout: Duration::from_secs(10),
    }
}

/// A private `redis-server` on a free loopback port.
///
/// # Example
/// ```no_run
/// let Some(redis) = test_support::RedisServer::start() else { return };
/// assert!(redis.url().starts_with("redis://127.0.0.1:"));
/// ```
#[derive(Debug)]
pub struct RedisServer {
    process: ServerProcess,
}

impl RedisServer {
    /// Starts a server; `None` when `redis-server` is missing (panics instead under `CI=true`).
    ///
    /// # Example
    /// ```no_run
    /// let Some(redis) = test_support::RedisServer::start() else { return };
    /// # let _ = redis;
    /// ```
    pub fn start() -> Option<RedisServer> {
        ServerProcess::start(redis_spec(&[], None)).map(|process| RedisServer { process })
    }

    /// Starts a server that also listens on a unix socket, [`RedisServer::unix_socket`].
    ///
    /// # Example
    /// ```no_run
    /// let Some(redis) = test_support::RedisServer::start_with_unix_socket() else { return };
    /// assert!(redis.unix_socket().ends_with("redis.sock"));
    /// ```
    pub fn start_with_unix_socket() -> Option<RedisServer> {
        ServerProcess::start(redis_spec(&["--unixsocket", "{dir}/redis.sock"], None))
            .map(|process| RedisServer { process })
    }

    /// The unix socket of a server from [`RedisServer::start_with_unix_socket`].
    ///
    /// # Example
    /// ```no_run
    /// let Some(redis) = test_support::RedisServer::start_with_unix_socket() else { return };
    /// println!("unix://{}", redis.unix_socket().display());
    /// ```
    pub fn unix_socket(&self) -> PathBuf {
        self.process.dir().join("redis.sock")
    }

    /// `redis://127.0.0.1:<port>`.
    ///
    /// # Example
    /// ```no_run
    /// let Some(redis) = test_support::RedisServer::start() else { return };
    /// assert_eq!(redis.url(), format!("redis://127.0.0.1:{}", redis.port()));
    /// ```
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port())
    }

    /// The port.
    ///
    /// # Example
    /// ```no_run
    /// let Some(redis) = test_support::RedisServer::start() else { return };
    /// assert_ne!(redis.port(), 6379);
    /// ```
    pub fn port(&self) -> u16 {
        self.process.port()
    }

    /// Kills the server now (SIGKILL: no shutdown, like a crash).
    ///
    /// # Example
    /// ```no_run
    /// let Some(redis) = test_support::RedisServer::start() else { return };
    /// redis.kill();
    /// ```
    pub fn kill(&self) {
        self.process.kill();
    }

    /// Starts the server again on the same port (empty: nothing is persisted). Panics when it does not come up.
    ///
    /// # Example
    /// ```no_run
    /// let Some(redis) = test_support::RedisServer::start() else { return };
    /// redis.kill();
    /// redis.restart();
    /// ```
    pub fn restart(&self) {
        if let Err(e) = self.process.restart() {
            panic!("redis-server did not restart on port {}: {e}", self.port());
        }
    }

    /// Sends one raw command, like `redis-cli -p <port> …` (see [`redis_command`]).
    ///
    /// # Example
    /// ```no_run
    /// let Some(redis) = test_support::RedisServer::start() else { return };
    /// redis.command(&["SET", "k", "v"]).unwrap();
    /// assert_eq!(redis.command(&["GET", "k"]).unwrap(), "v");
    /// ```
    pub fn command(&self, args: &[&str]) -> io::Result<String> {
        redis_command(self.port(), args)
    }

    /// The underlying process handle.
    ///
    /// # Example
    /// ```no_run
    /// let Some(redis) = test_support::RedisServer::start() else { return };
    /// assert!(redis.process().is_running());
    /// ```
    pub fn process(&self) -> &ServerProcess {
        &self.process
    }
}

/// One Redis server shared by all tests of a test binary, started on first use. Tests that share it must use
/// distinct keys (or key prefixes); tests that kill or flush the server must start their own.
///
/// # Example
/// ```no_run
/// let Some(redis) = test_support::shared_redis() else { return };
/// println!("{}", redis.url());
/// ```
pub fn shared_redis() -> Option<&'static RedisServer> {
    static SHARED: OnceLock<Option<RedisServer>> = OnceLock::new();
    SHARED.get_or_init(RedisServer::start).as_ref()
}

/// A three-primary Redis Cluster (no replicas) on free loopback ports.
///
/// # Example
/// ```no_run
/// let Some(cluster) = test_support::RedisCluster::start() else { return };
/// assert_eq!(cluster.nodes().len(), 3);
/// println!("{}", cluster.url()); // redis+cluster://127.0.0.1:P1,127.0.0.1:P2,127.0.0.1:P3
/// ```
#[derive(Debug)]
pub struct RedisCluster {
    nodes: Vec<ServerProcess>,
}

impl RedisCluster {
    /// Starts three cluster-enabled servers, joins them with `redis-cli --cluster create` and waits until every
    /// node reports `cluster_state:ok`. `None` when the binaries are missing (panics instead under `CI=true`).
    ///
    /// # Example
    /// ```no_run
    /// let Some(cluster) = test_support::RedisCluster::start() else { return };
    /// # let _ = cluster;
    /// ```
    pub fn start() -> Option<RedisCluster> {
        if !binary_available("redis-cli") {
            skip_or_panic("redis-cli", REDIS_HINT);
            return None;
        }
        const CLUSTER_ARGS: &[&str] = &[
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            "nodes-{port}.conf",
            "--cluster-node-timeout",
            "5000",
        ];
        let mut nodes = Vec::with_capacity(3);
        for _ in 0..3 {
            nodes.push(ServerProcess::start(redis_spec(
                CLUSTER_ARGS,
                Some(10_000),
            ))?);
        }
        let cluster = RedisCluster { nodes };
        let mut create = Command::new("redis-cli");
        create.arg("--cluster").arg("create");
        for node in cluster.nodes() {
            create.arg(node);
        }
        create.args(["--cluster-replicas", "0", "--cluster-yes"]);
        let output = match create.stdin(Stdio::null()).output() {
            Ok(output) => output,
            Err(e) => panic!("redis-cli --cluster create: {e}"),
        };
        if !output.status.success() {
            panic!(
                "redis-cli --cluster create failed: {}\n{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        while !cluster.is_ok() {
            if Instant::now() > deadline {
                panic!("cluster {:?} not ok after 30 s", cluster.nodes());
            }
            thread::sleep(Duration::from_millis(100));
        }
        Some(cluster)
    }

    /// Whether every node reports `cluster_state:ok`.
    fn is_ok(&self) -> bool {
        self.nodes.iter().all(|node| {
            redis_command(node.port(), &["CLUSTER", "INFO"])
                .is_ok_and(|info| info.lines().any(|l| l.trim() == "cluster_state:ok"))
        })
    }

    /// `redis+cluster://127.0.0.1:P1,127.0.0.1:P2,127.0.0.1:P3`, the `cachette::setup` syntax.
    ///
    /// # Example
    /// ```no_run
    /// let Some(cluster) = test_support::RedisCluster::start() else { return };
    /// assert!(cluster.url().starts_with("redis+cluster://"));
    /// ```
    pub fn url(&self) -> String {
        format!("redis+cluster://{}", self.nodes().join(","))
    }

    /// `redis://127.0.0.1:P` for each node, for `RedisBackend::builder().urls(…).cluster(true)`.
    ///
    /// # Example
    /// ```no_run
    /// let Some(cluster) = test_support::RedisCluster::start() else { return };
    /// assert_eq!(cluster.node_urls().len(), 3);
    /// ```
    pub fn node_urls(&self) -> Vec<String> {
        self.nodes()
            .iter()
            .map(|n| format!("redis://{n}"))
            .collect()
    }

    /// `127.0.0.1:P` for each node.
    ///
    /// # Example
    /// ```no_run
    /// let Some(cluster) = test_support::RedisCluster::start() else { return };
    /// assert!(cluster.nodes()[0].starts_with("127.0.0.1:"));
    /// ```
    pub fn nodes(&self) -> Vec<String> {
        self.nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port()))
            .collect()
    }

    /// The node processes.
    ///
    /// # Example
    /// ```no_run
    /// let Some(cluster) = test_support::RedisCluster::start() else { return };
    /// let ports: Vec<u16> = cluster.processes().iter().map(|p| p.port()).collect();
    /// # let _ = ports;
    /// ```
    pub fn processes(&self) -> &[ServerProcess] {
        &self.nodes
    }
}

/// A `redis-server` primary watched by one Redis Sentinel (quorum 1), both on free loopback ports.
///
/// # Example
/// ```no_run
/// let Some(sentinel) = test_support::RedisSentinel::start() else { return };
/// println!("{}", sentinel.url()); // redis+sentinel://127.0.0.1:P?service_name=mymaster
/// ```
#[derive(Debug)]
pub struct RedisSentinel {
    primary: RedisServer,
    sentinel: ServerProcess,
}

impl RedisSentinel {
    /// The service name the sentinel monitors.
    pub const SERVICE: &'static str = "mymaster";

    /// Starts the primary, then the sentinel, and waits until the sentinel knows the primary. `None` when
    /// `redis-server` is missing (panics instead under `CI=true`).
    ///
    /// # Example
    /// ```no_run
    /// let Some(sentinel) = test_support::RedisSentinel::start() else { return };
    /// # let _ = sentinel;
    /// ```
    pub fn start() -> Option<RedisSentinel> {
        let primary = RedisServer::start()?;
        let primary_port = primary.port();
        let spec = ServerSpec {
            program: "redis-server",
            install_hint: REDIS_HINT,
            args: Box::new(move |port, dir| {
                // Sentinel rewrites its configuration file, so it lives in the private directory.
                let conf = dir.join("sentinel.conf");
                let text = format!(
                    "port {port}\nbind 127.0.0.1\ndir {}\nsentinel monitor {} 127.0.0.1 {primary_port} 1\n\
                     sentinel down-after-milliseconds {} 5000\n",
                    dir.display(),
                    RedisSentinel::SERVICE,
                    RedisSentinel::SERVICE,
                );
                if let Err(e) = std::fs::write(&conf, text) {
                    panic!("cannot write {}: {e}", conf.display());
                }
                vec![conf.into_os_string(), "--sentinel".into()]
            }),
            ready: redis_answers,
            also_free: None,
            startup_timeout: Duration::from_secs(10),
        };
        let sentinel = ServerProcess::start(spec)?;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let known = redis_command(
                sentinel.port(),
                &["SENTINEL", "get-master-addr-by-name", Self::SERVICE],
            )
            .is_ok_and(|reply| reply.contains(&primary_port.to_string()));
            if known {
                break;
            }
            if Instant::now() > deadline {
                panic!(
                    "sentinel on port {} does not know the primary",
                    sentinel.port()
                );
            }
            thread::sleep(Duration::from_millis(50));
        }
        Some(RedisSentinel { primary, sentinel })
    }

    /// `redis+sentinel://127.0.0.1:<sentinel port>?service_name=mymaster`, the `cachette::setup` syntax.
    ///
    /// # Example
    /// ```no_run
    /// let Some(sentinel) = test_support::RedisSentinel::start() else { return };
    /// assert!(sentinel.url().starts_with("redis+sentinel://"));
    /// ```
    pub fn url(&self) -> String {
        format!(
            "redis+sentinel://127.0.0.1:{}?service_name={}",
            self.sentinel.port(),
            Self::SERVICE
        )
    }

    /// The monitored primary.
    ///
    /// # Example
    /// ```no_run
    /// let Some(sentinel) = test_support::RedisSentinel::start() else { return };
    /// assert!(sentinel.primary().process().is_running());
    /// ```
    pub fn primary(&self) -> &RedisServer {
        &self.primary
    }

    /// The sentinel process.
    ///
    /// # Example
    /// ```no_run
    /// let Some(sentinel) = test_support::RedisSentinel::start() else { return };
    /// assert_ne!(sentinel.sentinel().port(), sentinel.primary().port());
    /// ```
    pub fn sentinel(&self) -> &ServerProcess {
        &self.sentinel
    }
}

/// A private single-node `etcd` (v3) on a free loopback port, its peer port the next one.
///
/// # Example
/// ```no_run
/// let Some(etcd) = test_support::EtcdServer::start() else { return };
/// assert!(etcd.url().starts_with("etcd://127.0.0.1:"));
/// ```
#[derive(Debug)]
pub struct EtcdServer {
    process: ServerProcess,
}

impl EtcdServer {
    /// Starts a server; `None` when `etcd` is missing (panics instead under `CI=true`).
    ///
    /// # Example
    /// ```no_run
    /// let Some(etcd) = test_support::EtcdServer::start() else { return };
    /// # let _ = etcd;
    /// ```
    pub fn start() -> Option<EtcdServer> {
        let spec = ServerSpec {
            program: "etcd",
            install_hint: "install etcd (apt-get install etcd-server)",
            args: Box::new(|port, dir| {
                let client = format!("http://127.0.0.1:{port}");
                let peer = format!("http://127.0.0.1:{}", port + 1);
                vec![
                    "--name".into(),
                    "test".into(),
                    "--data-dir".into(),
                    dir.join("data").into_os_string(),
                    "--listen-client-urls".into(),
                    client.clone().into(),
                    "--advertise-client-urls".into(),
                    client.into(),
                    "--listen-peer-urls".into(),
                    peer.clone().into(),
                    "--initial-advertise-peer-urls".into(),
                    peer.clone().into(),
                    "--initial-cluster".into(),
                    format!("test={peer}").into(),
                    "--log-level".into(),
                    "error".into(),
                ]
            }),
            ready: tcp_accepts,
            also_free: Some(1),
            startup_timeout: Duration::from_secs(20),
        };
        ServerProcess::start(spec).map(|process| EtcdServer { process })
    }

    /// `etcd://127.0.0.1:PORT`, for `setup`.
    ///
    /// # Example
    /// ```no_run
    /// let Some(etcd) = test_support::EtcdServer::start() else { return };
    /// assert!(etcd.url().starts_with("etcd://"));
    /// ```
    pub fn url(&self) -> String {
        format!("etcd://127.0.0.1:{}", self.process.port())
    }

    /// `http://127.0.0.1:PORT`, the client endpoint.
    ///
    /// # Example
    /// ```no_run
    /// let Some(etcd) = test_support::EtcdServer::start() else { return };
    /// assert!(etcd.endpoint().starts_with("http://"));
    /// ```
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.process.port())
    }

    /// The underlying process handle.
    ///
    /// # Example
    /// ```no_run
    /// let Some(etcd) = test_support::EtcdServer::start() else { return };
    /// etcd.process().kill();
    /// ```
    pub fn process(&self) -> &ServerProcess {
        &self.process
    }
}

/// How many times the Redis server on `port` ran `command` (lower case, from `INFO commandstats`); 0 if never.
///
/// # Example
/// ```no_run
/// let Some(redis) = test_support::RedisServer::start() else { return };
/// assert_eq!(test_support::redis_command_calls(redis.port(), "get"), 0);
/// ```
pub fn redis_command_calls(port: u16, command: &str) -> u64 {
    let stats = redis_command(port, &["INFO", "commandstats"]).unwrap_or_default();
    let prefix = format!("cmdstat_{command}:calls=");
    stats
        .lines()
        .find_map(|line| line.strip_prefix(prefix.as_str()))
        .and_then(|rest| rest.split(',').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// A `memcached` on a free loopback port (64 MiB, UDP off), killed on drop. Start several for a pool.
///
/// # Example
/// ```no_run
/// let Some(memcached) = test_support::MemcachedServer::start() else { return };
/// assert!(memcached.address().starts_with("127.0.0.1:"));
/// let stats = memcached.stats().unwrap();
/// assert!(stats.contains_key("cmd_flush"));
/// ```
#[derive(Debug)]
pub struct MemcachedServer {
    process: ServerProcess,
}

impl MemcachedServer {
    /// Starts a server; `None` when `memcached` is missing (panics instead under `CI=true`).
    ///
    /// # Example
    /// ```no_run
    /// let servers: Vec<_> = (0..3).filter_map(|_| test_support::MemcachedServer::start()).collect();
    /// # let _ = servers;
    /// ```
    pub fn start() -> Option<MemcachedServer> {
        let spec = ServerSpec {
            program: "memcached",
            install_hint: "install memcached (apt-get install memcached)",
            args: Box::new(|port, _dir| {
                let mut args: Vec<OsString> = vec![
                    "-p".into(),
                    port.to_string().into(),
                    "-l".into(),
                    "127.0.0.1".into(),
                    "-U".into(),
                    "0".into(),
                    "-m".into(),
                    "64".into(),
                ];
                // memcached refuses to run as root unless told which user to be.
                if running_as_root() {
                    args.extend(["-u".into(), "root".into()]);
                }
                args
            }),
            ready: tcp_accepts,
            also_free: None,
            startup_timeout: Duration::from_secs(10),
        };
        ServerProcess::start(spec).map(|process| MemcachedServer { process })
    }

    /// `127.0.0.1:PORT`, as the memcached backend and pymemcache name it.
    ///
    /// # Example
    /// ```no_run
    /// let Some(memcached) = test_support::MemcachedServer::start() else { return };
    /// assert!(memcached.address().ends_with(&memcached.process().port().to_string()));
    /// ```
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.process.port())
    }

    /// `memcached://127.0.0.1:PORT`, for `setup`.
    ///
    /// # Example
    /// ```no_run
    /// let Some(memcached) = test_support::MemcachedServer::start() else { return };
    /// assert!(memcached.url().starts_with("memcached://"));
    /// ```
    pub fn url(&self) -> String {
        format!("memcached://{}", self.address())
    }

    /// The server's `stats` (`cmd_flush`, `curr_items`, `get_hits`, …).
    ///
    /// # Example
    /// ```no_run
    /// let Some(memcached) = test_support::MemcachedServer::start() else { return };
    /// assert_eq!(memcached.stats().unwrap()["curr_items"], "0");
    /// ```
    pub fn stats(&self) -> io::Result<std::collections::HashMap<String, String>> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.process.port()))?;
        stream.set_read_timeout(Some(Duration::from_secs(5)))?;
        stream.write_all(b"stats\r\n")?;
        let mut text = String::new();
        let mut buf = [0u8; 4096];
        while !text.ends_with("END\r\n") {
            let n = stream.read(&mut buf)?;
            if n == 0 {
                break;
            }
            text.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
        Ok(text
            .lines()
            .filter_map(|line| {
                let mut words = line.strip_prefix("STAT ")?.splitn(2, ' ');
                Some((words.next()?.to_owned(), words.next()?.to_owned()))
            })
            .collect())
    }

    /// The underlying process handle (kill, restart).
    ///
    /// # Example
    /// ```no_run
    /// let Some(memcached) = test_support::MemcachedServer::start() else { return };
    /// memcached.process().kill();
    /// memcached.process().restart().unwrap();
    /// ```
    pub fn process(&self) -> &ServerProcess {
        &self.process
    }
}

fn running_as_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// Collects what a tracing subscriber writes, for asserting on logs and spans.
///
/// # Example
/// ```
/// let logs = test_support::CapturedLogs::default();
/// let subscriber = tracing_subscriber::fmt().with_ansi(false).with_writer(logs.clone()).finish();
/// tracing::subscriber::with_default(subscriber, || tracing::warn!("cache backend down"));
/// assert!(logs.text().contains("cache backend down"));
/// ```
#[derive(Clone, Default)]
pub struct CapturedLogs(std::sync::Arc<Mutex<Vec<u8>>>);

impl CapturedLogs {
    /// Everything written so far.
    pub fn text(&self) -> String {
        let bytes = self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

impl Write for CapturedLogs {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for CapturedLogs {
    type Writer = CapturedLogs;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// Runs `body` on a current-thread Tokio runtime under a tracing subscriber that records everything at debug level
/// (span closes included, with their fields) into a buffer; returns `body`'s output and the text.
///
/// # Example
/// ```
/// let (answer, logs) = test_support::run_capturing_logs(async {
///     tracing::warn!("cache backend down");
///     42
/// });
/// assert_eq!(answer, 42);
/// assert!(logs.contains("cache backend down"));
/// ```
pub fn run_capturing_logs<T>(body: impl std::future::Future<Output = T>) -> (T, String) {
    let logs = CapturedLogs::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_span_events(tracing_subscriber::fmt::format::FmtSpan::CLOSE)
        .with_ansi(false)
        .with_writer(logs.clone())
        .finish();
    let output = tracing::subscriber::with_default(subscriber, || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a current-thread runtime")
            .block_on(body)
    });
    (output, logs.text())
}

/// The value of the `cache_calls_total` series with these labels in a Prometheus text exposition, 0 if absent.
///
/// # Example
/// ```
/// let text = "cache_calls_total{fn=\"app::price\",strategy=\"cached\",result=\"hit\"} 2\n";
/// assert_eq!(test_support::calls_total(text, "app::price", "cached", "hit"), 2);
/// assert_eq!(test_support::calls_total(text, "app::price", "cached", "miss"), 0);
/// ```
pub fn calls_total(text: &str, function: &str, strategy: &str, result: &str) -> u64 {
    let labels = format!("fn=\"{function}\",strategy=\"{strategy}\",result=\"{result}\"");
    text.lines()
        .filter(|line| line.starts_with("cache_calls_total{") && line.contains(&labels))
        .find_map(|line| line.rsplit(' ').next()?.parse().ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resp_replies() {
        assert_eq!(complete_reply(b"+PONG\r\n").unwrap().unwrap(), "PONG");
        assert_eq!(complete_reply(b":12\r\n").unwrap().unwrap(), "12");
        assert_eq!(complete_reply(b"$3\r\nabc\r\n").unwrap().unwrap(), "abc");
        assert!(complete_reply(b"$3\r\nab").is_none());
        assert_eq!(complete_reply(b"$-1\r\n").unwrap().unwrap(), "");
        assert!(complete_reply(b"-ERR x\r\n").unwrap().is_err());
    }

    #[test]
    fn free_ports_are_free() {
        let port = free_port(Some(10_000));
        assert!(TcpListener::bind(loopback(port)).is_ok());
    }
}
