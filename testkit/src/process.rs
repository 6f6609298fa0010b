//! Programs under test as child processes: where the `clusterdns` binary is
//! ([`clusterdns_binary`]), and [`Process`], a child whose output is collected, which is killed
//! when dropped, and whose failures come with its logs.

use std::ffi::OsStr;
use std::fmt::Debug;
use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use hickory_proto::rr::RecordType;

use crate::client::{answer_is, ask, TIMEOUT};
use crate::dns::Reply;
use crate::http::status_is;

/// How often [`Process::wait_until`] tries again.
const POLL: Duration = Duration::from_millis(5);

/// The `clusterdns` binary: `$CLUSTERDNS_BIN` when set, else `clusterdns` in the target profile
/// directory of the running executable (`target/<profile>/deps/<test>` gives
/// `target/<profile>/clusterdns`). Panics when it is not there: only the server package's own
/// tests make cargo build it, so `cargo test --workspace` has it and a lone
/// `cargo test -p clusterdns-e2e` needs `cargo build -p clusterdns` first.
pub fn clusterdns_binary() -> PathBuf {
    let path = match std::env::var_os("CLUSTERDNS_BIN") {
        Some(path) => PathBuf::from(path),
        None => {
            let exe = std::env::current_exe().expect("the path of the running executable");
            let dir = exe.parent().unwrap_or(Path::new("."));
            let profile = match dir.file_name() {
                Some(name) if name == "deps" => dir.parent().unwrap_or(dir),
                _ => dir,
            };
            profile.join(format!("clusterdns{}", std::env::consts::EXE_SUFFIX))
        }
    };
    assert!(
        path.is_file(),
        "{}: no clusterdns binary; build it first: cargo build -p clusterdns (with the tests' \
         profile), or set CLUSTERDNS_BIN",
        path.display()
    );
    path
}

/// A pipe of the child, read line by line into a string on a thread of its own.
struct Collected {
    text: Arc<Mutex<String>>,
    reader: Mutex<Option<JoinHandle<()>>>,
}

impl Collected {
    fn start(pipe: Option<impl Read + Send + 'static>) -> Collected {
        let text = Arc::new(Mutex::new(String::new()));
        let reader = pipe.map(|pipe| {
            let sink = text.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                    let mut text = lock(&sink);
                    text.push_str(&line);
                    text.push('\n');
                }
            })
        });
        Collected {
            text,
            reader: Mutex::new(reader),
        }
    }

    fn text(&self) -> String {
        lock(&self.text).clone()
    }

    /// Waits until the reader has taken the last line (the pipe closed).
    fn finish(&self) {
        if let Some(reader) = lock(&self.reader).take() {
            let _ = reader.join();
        }
    }
}

/// A lock that a panicking test thread did not make unusable.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A running child process with its stdout and stderr collected; killed when dropped.
pub struct Process {
    child: Mutex<Child>,
    pid: u32,
    program: String,
    stdout: Collected,
    stderr: Collected,
}

impl Process {
    /// Starts `command` with stdin closed and stdout and stderr collected.
    pub fn spawn(command: &mut Command) -> Process {
        let program = command.get_program().to_string_lossy().into_owned();
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {program}: {e}"));
        let stdout = Collected::start(child.stdout.take());
        let stderr = Collected::start(child.stderr.take());
        Process {
            pid: child.id(),
            child: Mutex::new(child),
            program,
            stdout,
            stderr,
        }
    }

    /// Starts the `clusterdns` binary ([`clusterdns_binary`]) with `args`.
    pub fn clusterdns<S: AsRef<OsStr>>(args: &[S]) -> Process {
        Process::spawn(Command::new(clusterdns_binary()).args(args))
    }

    /// The process ID.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// What it wrote to stdout so far.
    pub fn stdout(&self) -> String {
        self.stdout.text()
    }

    /// What it wrote to stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.text()
    }

    /// stdout and stderr, for failure messages.
    pub fn logs(&self) -> String {
        format!(
            "--- {} stdout:\n{}--- stderr:\n{}",
            self.program,
            self.stdout(),
            self.stderr()
        )
    }

    /// Its exit status when it has exited; `None` while it runs.
    pub fn exited(&self) -> Option<ExitStatus> {
        let status = lock(&self.child)
            .try_wait()
            .unwrap_or_else(|e| panic!("cannot wait for {}: {e}", self.program))?;
        self.stdout.finish();
        self.stderr.finish();
        Some(status)
    }

    /// Fails the test, with the logs, when the process has exited.
    pub fn assert_alive(&self) {
        if let Some(status) = self.exited() {
            panic!("{} exited with {status}\n{}", self.program, self.logs());
        }
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        let mut child = lock(&self.child);
        if let Ok(None) = child.try_wait() {
            // SAFETY: kill(2) on our own child, not reaped yet (the lock keeps it so).
            unsafe { libc::kill(self.pid as libc::pid_t, libc::SIGTERM) };
        }
    }

    /// Waits for the exit (and the last lines of its output); kills it and fails the test
    /// after `within`.
    pub fn wait_exit(&self, within: Duration) -> ExitStatus {
        let started = Instant::now();
        loop {
            if let Some(status) = self.exited() {
                return status;
            }
            if started.elapsed() > within {
                let _ = lock(&self.child).kill();
                panic!(
                    "{}: still running after {within:?}\n{}",
                    self.program,
                    self.logs()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Tries `attempt` every few milliseconds until it succeeds, and returns how long after
    /// `since` that was. Fails the test, with the last failure and the logs, when the process
    /// exits or `within` has passed since `since`.
    pub fn wait_until<E: Debug>(
        &self,
        since: Instant,
        within: Duration,
        what: &str,
        mut attempt: impl FnMut() -> Result<(), E>,
    ) -> Duration {
        loop {
            let failure = match attempt() {
                Ok(()) => return since.elapsed(),
                Err(failure) => failure,
            };
            self.assert_alive();
            assert!(
                since.elapsed() < within,
                "{what}: still {failure:?} after {within:?}\n{}",
                self.logs()
            );
            std::thread::sleep(POLL);
        }
    }
}

/// What a test asks of a DNS server it runs as a child process.
impl Process {
    /// Asks `name qtype` over UDP at `dns`; fails the test, with the logs, when nothing comes
    /// back within [`TIMEOUT`].
    pub fn ask(&self, dns: SocketAddr, name: &str, qtype: RecordType) -> Reply {
        ask(dns, name, qtype, TIMEOUT)
            .unwrap_or_else(|| panic!("no answer to {name} {qtype} at {dns}\n{}", self.logs()))
    }

    /// Waits until `name qtype` at `dns` satisfies `condition` (asked over UDP, 500 ms to
    /// answer each time); returns how long after `since` it did (see [`Process::wait_until`]).
    pub fn wait_answer(
        &self,
        dns: SocketAddr,
        since: Instant,
        within: Duration,
        name: &str,
        qtype: RecordType,
        condition: impl Fn(&Reply) -> bool,
    ) -> Duration {
        let what = format!("{name} {qtype} at {dns}");
        self.wait_until(since, within, &what, || {
            answer_is(dns, name, qtype, Duration::from_millis(500), &condition)
        })
    }

    /// Waits until `GET path` at `addr` answers `code`; returns how long that took.
    pub fn wait_status(
        &self,
        addr: SocketAddr,
        path: &str,
        code: u16,
        within: Duration,
    ) -> Duration {
        let what = format!("GET {path} at {addr}: {code}");
        self.wait_until(Instant::now(), within, &what, || {
            status_is(addr, path, code)
        })
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let mut child = lock(&self.child);
        let _ = child.kill();
        let _ = child.wait();
    }
}
