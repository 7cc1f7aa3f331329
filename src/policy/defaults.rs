//! The user's defaults: the contents of `policy.rc`, and how they fill the
//! gaps of an identity policy (python-passcrow's server rotation).

use std::path::Path;

use super::{
    clamp_lifetime, parse_ratio, IdentityPolicy, ServerChoice, DEFAULT_EXPIRATION_DAYS, DEFAULT_M,
    DEFAULT_N, DEFAULT_TIMEOUT_MINUTES,
};
use crate::{Error, Result};

/// The user's defaults (the contents of `policy.rc`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Defaults {
    /// Default n.
    pub n: u32,
    /// Default m.
    pub m: u32,
    /// Default identities.
    pub ids: Vec<IdentityPolicy>,
    /// Servers to choose from, by kind.
    pub servers: Vec<ServerChoice>,
    /// Escrow lifetime to ask for.
    pub expiration_days: u32,
    /// Code lifetime.
    pub timeout_minutes: u32,
}

impl Default for Defaults {
    fn default() -> Self {
        Defaults {
            n: DEFAULT_N,
            m: DEFAULT_M,
            ids: vec![],
            servers: vec![],
            expiration_days: DEFAULT_EXPIRATION_DAYS,
            timeout_minutes: DEFAULT_TIMEOUT_MINUTES,
        }
    }
}

impl Defaults {
    /// Choose a server for `p` from the server list (rotating the chosen
    /// one to the back), or else from the default identities' servers.
    pub(super) fn choose_server(&mut self, p: &IdentityPolicy) -> Option<String> {
        let need = p.kinds();
        if let Some(i) = self
            .servers
            .iter()
            .position(|s| need.iter().all(|k| s.kinds.iter().any(|x| x == k)))
        {
            let s = self.servers.remove(i);
            let name = s.server.clone();
            self.servers.push(s);
            return Some(name);
        }
        if let Some(i) = self.ids.iter().position(|x| x.server.is_some()) {
            let x = self.ids.remove(i);
            let name = x.server.clone();
            self.ids.push(x);
            return name;
        }
        None
    }

    /// Parse `policy.rc` text. Unknown settings are an error naming the line.
    pub fn parse(text: &str) -> Result<Defaults> {
        let mut d = Defaults::default();
        for (no, raw) in text.lines().enumerate() {
            let line = raw.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let err = |m: String| Error::bad_input(format!("policy.rc line {}: {m}", no + 1));
            let (op, what) = line
                .split_once(':')
                .ok_or_else(|| err(format!("{line:?} is not `setting: value`")))?;
            let (op, what) = (op.trim(), what.trim());
            let num = |w: &str| {
                w.parse::<u32>()
                    .map_err(|_| err(format!("{op}: {w:?} is not a number")))
            };
            match op {
                "ratio" => {
                    let (n, m) = parse_ratio(what, None).map_err(|e| err(e.to_string()))?;
                    d.n = n;
                    d.m = m;
                }
                "id" => d
                    .ids
                    .push(IdentityPolicy::parse(what, None).map_err(|e| err(e.to_string()))?),
                "server" => d
                    .servers
                    .push(ServerChoice::parse(what).map_err(|e| err(e.to_string()))?),
                "expiration_days" => d.expiration_days = clamp_lifetime(num(what)?),
                "timeout_minutes" => d.timeout_minutes = clamp_lifetime(num(what)?),
                _ => return Err(err(format!("unknown setting {op:?}"))),
            }
        }
        Ok(d)
    }

    /// Load `policy.rc`; a missing file gives the built-in defaults.
    pub fn load(path: &Path) -> Result<Defaults> {
        match std::fs::read_to_string(path) {
            Ok(t) => Defaults::parse(&t),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Defaults::default()),
            Err(e) => Err(Error::io(format!("reading {}", path.display()), e)),
        }
    }

    /// The file text, in the reference's syntax, with our commentary.
    pub fn to_text(&self) -> String {
        let mut t = String::new();
        t.push_str("## Default Passcrow policy ##\n#\n");
        t.push_str("# Applications and the `passcrow` tool fill in what a policy leaves out\n");
        t.push_str("# (ratio, identities, servers, lifetimes) from this file.\n#\n");
        t.push_str("## Your settings ##\n");
        t.push_str(&format!("ratio: {}/{}\n", self.n, self.m));
        for i in &self.ids {
            t.push_str(&format!("id: {i}\n"));
        }
        for s in &self.servers {
            t.push_str(&format!("server: {s}\n"));
        }
        t.push_str(&format!("expiration_days: {}\n", self.expiration_days));
        t.push_str(&format!("timeout_minutes: {}\n", self.timeout_minutes));
        t.push_str(
            "\n## Examples ## (remove the leading # to use one)\n\
             #\n\
             # ratio: N/M asks that N of M identities verify. When the number of\n\
             # identities differs from M, N is scaled to match.\n\
             #ratio: 2/3\n\
             #\n\
             # id: IDENTITY[, notify=IDENTITY][ via SERVER]\n\
             # A bare e-mail address or phone number is fine; notify= names someone\n\
             # told when recovery starts (notify=- for nobody).\n\
             #id: user@example.org\n\
             #id: user@example.org, notify=friend@example.org\n\
             #id: +9995885522 via sms.passcrow.example.org\n\
             #\n\
             # server: KINDS via SERVER picks a server for identities without one.\n\
             # `http://host:port` means plain HTTP (for testing on loopback only).\n\
             #server: email via passcrow-test.mailpile.is\n\
             #server: sms, tel via sms.passcrow.example.org\n\
             #\n\
             #expiration_days: 365   # how long servers should keep the shares\n\
             #timeout_minutes: 30    # how long a verification code lives\n",
        );
        t
    }

    /// Write `policy.rc` atomically (mode 0600).
    pub fn save(&self, path: &Path) -> Result<()> {
        crate::pack::write_atomic(path, self.to_text().as_bytes())
    }
}
