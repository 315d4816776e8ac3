//! Dashboard sessions: the cookie that stands for "this browser gave the
//! key", and the CSRF token each session's forms must carry back.
//!
//! A session is a random token from the operating system, kept in memory
//! only (a restart logs everyone out). Sessions are bounded in number (the
//! least recently used goes first) and expire when idle and when old, so
//! neither a forgotten tab nor a flood of logins grows the server.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// The cookie's name.
pub(crate) const COOKIE: &str = "taskworker_session";
/// At most this many sessions live at once: far more browsers than a team
/// has, few enough that the table stays small.
const MAX_SESSIONS: usize = 1000;
/// A session unused this long ends: a working day's pause.
const IDLE_LIMIT: Duration = Duration::from_secs(8 * 3600);
/// A session ends this long after the key was given, however busy.
const AGE_LIMIT: Duration = Duration::from_secs(24 * 3600);

/// Why no session could be made.
#[derive(Debug)]
pub(crate) enum SessionError {
    /// The operating system gave no random bytes.
    NoRandomness(std::io::Error),
}

impl fmt::Display for SessionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SessionError::NoRandomness(e) => write!(f, "no random bytes for a session: {e}"),
        }
    }
}

/// One logged-in browser.
#[derive(Debug, Clone)]
struct Session {
    /// The token its forms must carry.
    csrf: String,
    /// When it was made.
    created: Instant,
    /// When it was last used.
    used: Instant,
}

/// What a request's cookie stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Live {
    /// The session's token (the cookie's value).
    pub(crate) token: String,
    /// Its CSRF token.
    pub(crate) csrf: String,
}

/// Every live session.
#[derive(Debug, Default)]
pub(crate) struct Sessions {
    table: Mutex<HashMap<String, Session>>,
}

impl Sessions {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Session>> {
        // A panic while holding the lock leaves a table of whole entries.
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Makes a session; the oldest-used one makes room when the table is full.
    pub(crate) fn start(&self, now: Instant) -> Result<Live, SessionError> {
        let token = random_hex()?;
        let csrf = random_hex()?;
        let mut table = self.lock();
        table.retain(|_, s| alive(s, now));
        if table.len() >= MAX_SESSIONS {
            if let Some(oldest) = table
                .iter()
                .min_by_key(|(_, s)| s.used)
                .map(|(k, _)| k.clone())
            {
                table.remove(&oldest);
            }
        }
        table.insert(
            token.clone(),
            Session {
                csrf: csrf.clone(),
                created: now,
                used: now,
            },
        );
        Ok(Live { token, csrf })
    }

    /// The live session `token` names, marked as used now.
    pub(crate) fn find(&self, token: &str, now: Instant) -> Option<Live> {
        let mut table = self.lock();
        let session = table.get_mut(token)?;
        if !alive(session, now) {
            table.remove(token);
            return None;
        }
        session.used = now;
        Some(Live {
            token: token.to_string(),
            csrf: session.csrf.clone(),
        })
    }

    /// Ends a session (log out).
    pub(crate) fn end(&self, token: &str) {
        self.lock().remove(token);
    }

    /// How many sessions are in the table.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().len()
    }
}

fn alive(s: &Session, now: Instant) -> bool {
    now.saturating_duration_since(s.used) < IDLE_LIMIT
        && now.saturating_duration_since(s.created) < AGE_LIMIT
}

/// 32 bytes from the kernel's generator (`getrandom(2)`, which needs no
/// `/dev` inside an empty container), as 64 hex digits.
fn random_hex() -> Result<String, SessionError> {
    let mut bytes = [0u8; 32];
    let mut filled = 0;
    while filled < bytes.len() {
        let n =
            rustix::rand::getrandom(&mut bytes[filled..], rustix::rand::GetRandomFlags::empty())
                .map_err(|e| SessionError::NoRandomness(e.into()))?;
        filled += n;
    }
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// The `Set-Cookie` value that starts `token`'s session in the browser:
/// never readable by a script, never sent by another site's page or form,
/// only to the dashboard's paths, and only over TLS when the page came so.
pub(crate) fn cookie(token: &str, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!(
        "{COOKIE}={token}; Path=/ui; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
        AGE_LIMIT.as_secs()
    )
}

/// The `Set-Cookie` value that removes the cookie.
pub(crate) fn cleared_cookie(secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!("{COOKIE}=; Path=/ui; HttpOnly; SameSite=Strict; Max-Age=0{secure}")
}

/// The session token in a `Cookie` header, if any.
pub(crate) fn token_in(cookie_header: &str) -> Option<&str> {
    cookie_header
        .split(';')
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.trim())
        .filter(|v| !v.is_empty())
}

/// Compares a form's CSRF token with the session's in constant time.
pub(crate) fn csrf_matches(live: &Live, given: &str) -> bool {
    super::super::routes::constant_time_eq(given.as_bytes(), live.csrf.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_long() {
        let (a, b) = (random_hex().unwrap(), random_hex().unwrap());
        assert_eq!(a.len(), 64);
        assert_ne!(a, b);
    }

    #[test]
    fn a_session_is_found_until_it_idles_or_ages_out() {
        let sessions = Sessions::default();
        let t0 = Instant::now();
        let live = sessions.start(t0).unwrap();
        assert_ne!(live.token, live.csrf);
        assert_eq!(sessions.find(&live.token, t0), Some(live.clone()));
        assert_eq!(sessions.find("nope", t0), None);
        let idle = t0 + IDLE_LIMIT;
        assert_eq!(sessions.find(&live.token, idle), None);
        // Kept busy, it still ends at its age limit.
        let busy = sessions.start(t0).unwrap();
        let mut t = t0;
        while t + IDLE_LIMIT / 2 < t0 + AGE_LIMIT {
            t += IDLE_LIMIT / 2;
            assert!(sessions.find(&busy.token, t).is_some());
        }
        assert_eq!(sessions.find(&busy.token, t0 + AGE_LIMIT), None);
    }

    #[test]
    fn the_table_is_bounded_and_drops_the_least_recently_used() {
        let sessions = Sessions::default();
        let t0 = Instant::now();
        let first = sessions.start(t0).unwrap();
        let second = sessions.start(t0 + Duration::from_secs(1)).unwrap();
        // The first is used again, so the second is now the oldest used.
        sessions.find(&first.token, t0 + Duration::from_secs(2));
        for i in 0..MAX_SESSIONS {
            sessions
                .start(t0 + Duration::from_secs(3 + i as u64))
                .unwrap();
        }
        assert_eq!(sessions.len(), MAX_SESSIONS);
        let late = t0 + Duration::from_secs(3);
        assert!(sessions.find(&second.token, late).is_none());
    }

    #[test]
    fn ending_a_session_forgets_it() {
        let sessions = Sessions::default();
        let now = Instant::now();
        let live = sessions.start(now).unwrap();
        sessions.end(&live.token);
        assert!(sessions.find(&live.token, now).is_none());
    }

    #[test]
    fn the_cookie_is_http_only_strict_and_scoped_to_the_dashboard() {
        let c = cookie("abc", false);
        assert_eq!(
            c,
            "taskworker_session=abc; Path=/ui; HttpOnly; SameSite=Strict; Max-Age=86400"
        );
        assert!(cookie("abc", true).ends_with("; Secure"));
        assert!(cleared_cookie(false).contains("Max-Age=0"));
    }

    #[test]
    fn the_token_is_read_from_among_other_cookies() {
        assert_eq!(token_in("a=1; taskworker_session=xyz; b=2"), Some("xyz"));
        assert_eq!(token_in("taskworker_session="), None);
        assert_eq!(token_in("other=1"), None);
    }
}
