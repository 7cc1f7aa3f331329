//! [`FileSink`]: delivery into a file, for tests and demos.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Mutex;

use super::{Deliver, Notice, Outgoing};
use crate::server::error::{ServerError, ServerResult};

/// Appends `identity<TAB>code` lines to a file (for tests and demos).
/// Recovery notices are written as comment lines starting with `#`.
#[derive(Debug)]
pub struct FileSink {
    path: PathBuf,
    lock: Mutex<()>,
}

impl FileSink {
    /// Kinds the file sink serves.
    pub const KINDS: &'static [&'static str] = &["email", "mailto", "tel", "sms"];

    /// A sink appending to `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        FileSink {
            path: path.into(),
            lock: Mutex::new(()),
        }
    }
}

impl Deliver for FileSink {
    fn name(&self) -> &str {
        "file"
    }

    fn deliver(&self, msg: &Outgoing) -> ServerResult<()> {
        let line = match &msg.notice {
            Notice::Code { code, .. } => format!("{}\t{}\n", msg.to, code.expose_secret()),
            Notice::RecoveryStarted { code_sent_to } => {
                format!(
                    "# notice\t{}\trecovery started, code sent to {code_sent_to}\n",
                    msg.to
                )
            }
            Notice::ReleasePending { due, cancel_url } => format!(
                "# notice\t{}\trelease pending until {due}, stop it at {cancel_url}\n",
                msg.to
            ),
            Notice::TooManyWrongCodes { paused_until } => match paused_until {
                Some(t) => format!(
                    "# notice\t{}\ttoo many wrong codes, none checked until {t}\n",
                    msg.to
                ),
                None => format!("# notice\t{}\ttoo many wrong codes, frozen\n", msg.to),
            },
        };
        let _g = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        let mut f = crate::util::files::private_file_options()
            .create(true)
            .append(true)
            .open(&self.path)
            .map_err(|e| ServerError::io("opening", &self.path, e))?;
        // One write of the whole line (O_APPEND): readers never see half a
        // line from us. Not synced: this sink is for tests and demos.
        f.write_all(line.as_bytes())
            .map_err(|e| ServerError::io("writing", &self.path, e))
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::out;
    use super::*;

    #[test]
    fn file_sink() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("codes.txt");
        let f = FileSink::new(&p);
        f.deliver(&out("en")).unwrap();
        let t = std::fs::read_to_string(&p).unwrap();
        assert_eq!(t, "email:a@example.org\tA123456\n");
    }
}
