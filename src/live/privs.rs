//! Dropping privileges after the capture device is open (`-Z USER`), as tcpdump does: the open
//! packet socket keeps working, everything else runs as an unprivileged user.
//!
//! Order matters: supplementary groups, then the group, then the user (once the user is changed
//! the process may no longer change its groups). Leaving uid 0 clears every capability.

use nix::unistd::{getuid, setgid, setgroups, setuid, Uid, User};

/// Why the drop failed; each message says what to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PrivError {
    #[error("-Z {user}: no such user; create it (e.g. `useradd --system --no-create-home {user}`) or name another")]
    NoSuchUser { user: String },
    #[error("-Z {user}: cannot look the user up: {source}")]
    Lookup {
        user: String,
        #[source]
        source: nix::Error,
    },
    #[error("-Z {user}: cannot {step}: {source}; -Z needs dg-audit started as root (or with CAP_SETUID and CAP_SETGID)")]
    Change {
        user: String,
        step: &'static str,
        #[source]
        source: nix::Error,
    },
    #[error("-Z {user}: root privileges could be regained after the drop; refusing to go on")]
    NotDropped { user: String },
}

/// Switches the whole process to `user` (its primary group only).
pub fn drop_to(user: &str) -> Result<(), PrivError> {
    let entry = User::from_name(user)
        .map_err(|source| PrivError::Lookup {
            user: user.to_string(),
            source,
        })?
        .ok_or_else(|| PrivError::NoSuchUser {
            user: user.to_string(),
        })?;
    let change = |step: &'static str, r: nix::Result<()>| {
        r.map_err(|source| PrivError::Change {
            user: user.to_string(),
            step,
            source,
        })
    };
    change("set supplementary groups", setgroups(&[entry.gid]))?;
    change("set the group id", setgid(entry.gid))?;
    change("set the user id", setuid(entry.uid))?;
    if !entry.uid.is_root() && setuid(Uid::from_raw(0)).is_ok() {
        return Err(PrivError::NotDropped {
            user: user.to_string(),
        });
    }
    tracing::info!("dropped privileges to {user} (uid {})", getuid());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_user_says_how_to_create_it() {
        let err = drop_to("dg-audit-no-such-user-x").expect_err("no such user");
        assert!(err.to_string().contains("useradd"), "{err}");
    }
}
