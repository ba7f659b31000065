//! What tests read of the process's logs: every line, JSON as the functions
//! write it on Lambda, at debug level and for every crate, so that a check
//! for personal data sees all there is.

use std::sync::{Arc, Mutex};

/// Installs a subscriber that keeps every log line of this process in the
/// returned buffer (the first call in a process wins; later ones share its
/// buffer only if they were that call).
pub fn capture() -> Arc<Mutex<Vec<u8>>> {
    #[derive(Clone)]
    struct Sink(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Sink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            if let Ok(mut b) = self.0.lock() {
                b.extend_from_slice(buf);
            }
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let buf = Arc::new(Mutex::new(Vec::new()));
    let sink = Sink(buf.clone());
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(tracing_subscriber::EnvFilter::new("debug"))
        .with_writer(move || sink.clone())
        .try_init();
    buf
}
