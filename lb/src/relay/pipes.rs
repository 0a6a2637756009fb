//! A pool of kernel pipes for splice(2). A direction borrows a pipe only while bytes flow and
//! returns it (empty) when the source has nothing more to read, so idle connections hold none.
#![allow(unsafe_code)] // pipe2(2) and fcntl(2); every block has its SAFETY comment

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::Mutex;

/// One pipe: bytes go in at `w`, come out at `r`.
#[derive(Debug)]
pub struct Pipe {
    r: OwnedFd,
    w: OwnedFd,
}

impl Pipe {
    fn new(size: usize) -> io::Result<Pipe> {
        let mut fds = [0 as RawFd; 2];
        // SAFETY: `fds` is a valid array of two ints for pipe2 to fill.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) } != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: pipe2 succeeded, so both fds are open and owned by nobody else.
        let p = unsafe {
            Pipe {
                r: OwnedFd::from_raw_fd(fds[0]),
                w: OwnedFd::from_raw_fd(fds[1]),
            }
        };
        if size != 65536 {
            // Best effort: above /proc/sys/fs/pipe-max-size an unprivileged process is refused.
            // SAFETY: plain fcntl on an fd we own.
            unsafe { libc::fcntl(p.w.as_raw_fd(), libc::F_SETPIPE_SZ, size as libc::c_int) };
        }
        Ok(p)
    }
    /// The pipe's read end.
    pub fn read_fd(&self) -> RawFd {
        self.r.as_raw_fd()
    }
    /// The pipe's write end.
    pub fn write_fd(&self) -> RawFd {
        self.w.as_raw_fd()
    }
}

/// Free pipes of one size, shared by the connections of a listener.
#[derive(Debug)]
pub struct PipePool {
    size: usize,
    max_free: usize,
    free: Mutex<Vec<Pipe>>,
}

impl PipePool {
    /// A pool of pipes of `size` bytes keeping at most `max_free` idle pipes.
    pub fn new(size: usize, max_free: usize) -> PipePool {
        PipePool {
            size,
            max_free,
            free: Mutex::new(Vec::new()),
        }
    }

    /// Bytes a pipe holds (what one splice call moves at most).
    pub fn pipe_size(&self) -> usize {
        self.size
    }

    /// An empty pipe (reused or new).
    pub fn get(&self) -> io::Result<Pipe> {
        if let Some(p) = self.lock().pop() {
            return Ok(p);
        }
        Pipe::new(self.size)
    }

    /// Returns an *empty* pipe for reuse (a pipe that may hold bytes must be dropped instead).
    pub fn put(&self, p: Pipe) {
        let mut free = self.lock();
        if free.len() < self.max_free {
            free.push(p);
        }
    }

    /// Idle pipes kept.
    pub fn idle(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Pipe>> {
        self.free.lock().unwrap_or_else(|e| e.into_inner())
    }
}
