//! Delivery credentials (the SMTP password, the SMS API's auth token,
//! webhook bearer tokens): where they come from, and warnings when they
//! are exposed.
//!
//! Each may be given in `config.toml` itself (`password`), in a file it
//! names (`password_file`: the file's text, less its trailing newline), or
//! in the environment ([`ENV_SMTP_PASSWORD`], [`ENV_SMS_AUTH_TOKEN`],
//! [`ENV_WEBHOOK_TOKEN`]), so none ever needs the command line, where
//! every user of the machine can read it (`ps`). Precedence: the
//! environment, when set and not empty, wins over the config file; in the
//! config file, a value and a file for the same credential together are
//! refused as ambiguous.
//!
//! Errors and logs name the setting and the file, never the credential.

use std::io::Read;
use std::path::Path;

use super::config::Config;
use super::error::{ServerError, ServerResult};
use crate::crypto::SecretString;

/// The SMTP login password (overrides `delivery.smtp.password[_file]`).
pub const ENV_SMTP_PASSWORD: &str = "PASSCROW_SMTP_PASSWORD";
/// The SMS API's auth token (overrides `delivery.sms.auth_token[_file]`).
pub const ENV_SMS_AUTH_TOKEN: &str = "PASSCROW_SMS_AUTH_TOKEN";
/// The bearer token of the one webhook configured (overrides its
/// `bearer_token[_file]`; refused when several webhooks are configured:
/// give each its own `bearer_token_file`).
pub const ENV_WEBHOOK_TOKEN: &str = "PASSCROW_WEBHOOK_TOKEN";

/// A credential file longer than this is not a credential.
const MAX_FILE_BYTES: u64 = 64 * 1024;

/// Reads an environment variable (the process's, or a test's).
pub(crate) type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

/// The process environment.
pub(crate) fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// One credential's possible sources.
pub(crate) struct Source<'a> {
    /// The setting, for messages (`delivery.smtp.password`).
    pub setting: &'static str,
    /// The value written in the config file.
    pub inline: Option<&'a str>,
    /// The file named in the config file (`..._file`).
    pub file: Option<&'a Path>,
    /// The environment variable that overrides both, if any.
    pub env: Option<&'static str>,
}

/// The credential `src` describes, if any is given.
pub(crate) fn resolve(src: &Source<'_>, env: Env<'_>) -> ServerResult<Option<SecretString>> {
    let inline = src.inline.filter(|v| !v.is_empty());
    if inline.is_some() && src.file.is_some() {
        return Err(ServerError::config(format!(
            "{0} and {0}_file are both set: keep one",
            src.setting
        )));
    }
    if let Some(name) = src.env {
        if let Some(v) = env(name).filter(|v| !v.is_empty()) {
            tracing::debug!("{} taken from ${name}", src.setting);
            return Ok(Some(SecretString::new(v)));
        }
    }
    if let Some(path) = src.file {
        return read_file(src.setting, path).map(Some);
    }
    Ok(inline.map(SecretString::from))
}

/// Read a credential file: its text less the trailing line ending.
fn read_file(setting: &str, path: &Path) -> ServerResult<SecretString> {
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_FILE_BYTES + 1).read_to_end(&mut bytes))
        .map_err(|e| ServerError::io("reading", path, e))?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(ServerError::config(format!(
            "{setting}_file {} is larger than {MAX_FILE_BYTES} bytes: not a credential",
            path.display()
        )));
    }
    let text = String::from_utf8(bytes).map_err(|_| {
        ServerError::config(format!(
            "{setting}_file {} is not UTF-8 text",
            path.display()
        ))
    })?;
    let text = SecretString::new(text);
    let value = text.expose_secret().trim_end_matches(['\n', '\r']);
    if value.is_empty() {
        return Err(ServerError::config(format!(
            "{setting}_file {} is empty",
            path.display()
        )));
    }
    if crate::util::files::readable_by_others(path) {
        tracing::warn!(
            "{setting}_file {} can be read by other users: chmod 600 it",
            path.display()
        );
    }
    Ok(SecretString::from(value))
}

/// True when the URL holds a password (`scheme://user:password@host`, or
/// `user:password@host` with no scheme).
pub fn url_has_password(url: &str) -> bool {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    match rest.rsplit_once('@') {
        Some((login, _)) => login.split_once(':').is_some_and(|(_, p)| !p.is_empty()),
        None => false,
    }
}

/// True when the configuration itself holds a credential (not merely
/// names a file holding one).
pub fn holds_credentials(cfg: &Config) -> bool {
    let d = &cfg.delivery;
    let smtp = d.smtp.as_ref().is_some_and(|s| {
        url_has_password(&s.url) || s.password.as_deref().is_some_and(|p| !p.is_empty())
    });
    let sms = d.sms.as_ref().is_some_and(|s| !s.auth_token.is_empty());
    let hooks = d
        .webhooks
        .iter()
        .any(|w| w.bearer_token.as_deref().is_some_and(|t| !t.is_empty()));
    let db = cfg.database.as_deref().is_some_and(url_has_password);
    smtp || sms || hooks || db
}

/// Warn when the config file at `path` holds a credential and its group
/// or others may read it.
pub(crate) fn warn_if_exposed(path: &Path, cfg: &Config) {
    if holds_credentials(cfg) && crate::util::files::readable_by_others(path) {
        tracing::warn!(
            "{} holds credentials and can be read by other users: chmod 600 it \
             (or move the credentials to files or the environment, see docs/server.md)",
            path.display()
        );
    }
}

/// Warn that an SMTP URL given on the command line holds a password.
pub fn warn_if_password_on_command_line(url: &str) {
    if url_has_password(url) {
        tracing::warn!(
            "the SMTP password in --smtp is visible to other users of this machine \
             (ps, /proc): use delivery.smtp.password_file or ${ENV_SMTP_PASSWORD} instead"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::config::{SmsConfig, SmtpConfig, WebhookConfig};

    fn no_env(_: &str) -> Option<String> {
        None
    }

    fn src<'a>(inline: Option<&'a str>, file: Option<&'a Path>) -> Source<'a> {
        Source {
            setting: "delivery.smtp.password",
            inline,
            file,
            env: Some(ENV_SMTP_PASSWORD),
        }
    }

    fn get(s: &Source<'_>, env: Env<'_>) -> Option<String> {
        resolve(s, env)
            .unwrap()
            .map(|v| v.expose_secret().to_string())
    }

    #[test]
    fn from_the_config_the_environment_or_a_file() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("pw");
        crate::util::files::create_private_file(&f, b"from-file\n").unwrap();
        let env = |n: &str| (n == ENV_SMTP_PASSWORD).then(|| "from-env".to_string());
        assert_eq!(get(&src(None, None), &no_env), None);
        assert_eq!(get(&src(Some(""), None), &no_env), None);
        assert_eq!(get(&src(Some("inline"), None), &no_env).unwrap(), "inline");
        // The file's trailing newline is not part of it.
        assert_eq!(get(&src(None, Some(&f)), &no_env).unwrap(), "from-file");
        // The environment wins over the config file.
        assert_eq!(get(&src(Some("inline"), None), &env).unwrap(), "from-env");
        assert_eq!(get(&src(None, Some(&f)), &env).unwrap(), "from-env");
        // An empty variable is as good as unset.
        let empty = |_: &str| Some(String::new());
        assert_eq!(get(&src(None, Some(&f)), &empty).unwrap(), "from-file");
        // A value and a file: ambiguous.
        let e = resolve(&src(Some("inline"), Some(&f)), &no_env).unwrap_err();
        assert!(e.to_string().contains("both set"), "{e}");
        assert!(!e.to_string().contains("inline"), "{e}");
        // CRLF, and only the line ending is trimmed.
        std::fs::write(&f, b" two words \r\n").unwrap();
        assert_eq!(get(&src(None, Some(&f)), &no_env).unwrap(), " two words ");
    }

    #[test]
    fn a_bad_credential_file_is_named_never_quoted() {
        let d = tempfile::tempdir().unwrap();
        let missing = d.path().join("missing");
        let e = resolve(&src(None, Some(&missing)), &no_env).unwrap_err();
        assert!(matches!(e, ServerError::Io { .. }), "{e:?}");
        assert!(e.to_string().contains(&*missing.to_string_lossy()), "{e}");
        let empty = d.path().join("empty");
        std::fs::write(&empty, b"\n").unwrap();
        let e = resolve(&src(None, Some(&empty)), &no_env).unwrap_err();
        assert!(e.to_string().contains("is empty"), "{e}");
        let bin = d.path().join("bin");
        std::fs::write(&bin, b"hunter2\xff\n").unwrap();
        let e = resolve(&src(None, Some(&bin)), &no_env).unwrap_err();
        assert!(e.to_string().contains("not UTF-8"), "{e}");
        assert!(!e.to_string().contains("hunter2"), "{e}");
        // A directory cannot be read as a file.
        let e = resolve(&src(None, Some(d.path())), &no_env).unwrap_err();
        assert!(e.to_string().contains(&*d.path().to_string_lossy()), "{e}");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let locked = d.path().join("locked");
            std::fs::write(&locked, b"hunter2\n").unwrap();
            std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o000)).unwrap();
            // Root reads it anyway; anyone else is refused, by path.
            if let Err(e) = resolve(&src(None, Some(&locked)), &no_env) {
                let m = e.to_string();
                assert!(m.contains(&*locked.to_string_lossy()), "{m}");
                assert!(!m.contains("hunter2"), "{m}");
            }
        }
    }

    #[test]
    fn passwords_in_urls() {
        assert!(url_has_password("smtps://u:pw@mail.example.org"));
        assert!(url_has_password("u:pw@mail.example.org"));
        assert!(!url_has_password("smtps://u@mail.example.org"));
        assert!(!url_has_password("smtps://u:@mail.example.org"));
        assert!(!url_has_password("smtps://mail.example.org:465"));
    }

    #[test]
    fn what_counts_as_holding_credentials() {
        let mut c = Config::new("/srv/pc");
        assert!(!holds_credentials(&c));
        c.delivery.smtp = Some(SmtpConfig {
            url: "smtps://mail.example.org".into(),
            username: Some("u".into()),
            password_file: Some("/etc/passcrow/smtp-password".into()),
            ..Default::default()
        });
        assert!(!holds_credentials(&c), "a file name is not a credential");
        c.delivery.smtp.as_mut().unwrap().url = "smtps://u:pw@mail.example.org".into();
        assert!(holds_credentials(&c));
        c.delivery.smtp = None;
        c.delivery.sms = Some(SmsConfig {
            auth_token: "t".into(),
            ..Default::default()
        });
        assert!(holds_credentials(&c));
        c.delivery.sms = None;
        c.delivery.webhooks = vec![WebhookConfig {
            bearer_token: Some("t".into()),
            ..Default::default()
        }];
        assert!(holds_credentials(&c));
    }
}
