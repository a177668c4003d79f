//! `USER name[:group]` resolved through the root filesystem's `/etc/passwd` and
//! `/etc/group`, as BuildKit does before starting the process.

use buildd_snapshot::{LayerStore, LayeredView, Snapshot, etc_db};

use crate::solver::OpError;

/// The process's identity: numeric `uid:gid` and its supplementary groups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct User {
    pub id: String,
    pub groups: Vec<u32>,
}

/// The identity for `user` (`user[:group]`, names or numbers; empty is root). A
/// user without a group gets its primary group from `/etc/passwd`, or 0 when the
/// (numeric) user has no entry there. As BuildKit (runc's user lookup): the
/// supplementary groups are the primary group and the groups `/etc/group` lists
/// the user in, or only the group named explicitly.
pub(super) fn resolve(store: &LayerStore, base: &Snapshot, user: &str) -> Result<User, OpError> {
    let user = if user.is_empty() { "root" } else { user };
    let (name, group) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user, None),
    };
    let numeric = |s: &str| s.parse::<u32>().ok();
    if let (Some(uid), Some(gid)) = (numeric(name), group.and_then(numeric)) {
        return Ok(User {
            id: format!("{uid}:{gid}"),
            groups: vec![gid],
        });
    }
    let view = LayeredView::new(store, base).map_err(|e| OpError::new(e.to_string()))?;
    let passwd = read_db(&view, "/etc/passwd")?;
    // The user's name in passwd, for its memberships in /etc/group.
    let mut member = None;
    let (uid, primary) = match numeric(name) {
        Some(uid) => {
            let entry = etc_db::entries(&passwd).find(|f| id_field(f, 2) == Some(uid));
            member = entry
                .as_ref()
                .and_then(|f| f.first().map(|n| n.to_string()));
            (uid, entry.and_then(|f| id_field(&f, 3)).unwrap_or(0))
        }
        // Root needs no entry: a base without /etc/passwd still runs as root.
        None if name == "root" && !etc_db::entries(&passwd).any(|f| f.first() == Some(&"root")) => {
            (0, 0)
        }
        None => {
            member = Some(name.to_owned());
            etc_db::entries(&passwd)
                .find(|f| f.first() == Some(&name))
                .and_then(|f| Some((id_field(&f, 2)?, id_field(&f, 3)?)))
                .ok_or_else(|| {
                    OpError::new(format!(
                        "unable to find user {name}: no matching entries in passwd file"
                    ))
                })?
        }
    };
    if group.is_none() {
        let mut groups = vec![primary];
        if let Some(member) = member {
            let text = read_db(&view, "/etc/group")?;
            for f in etc_db::entries(&text) {
                let listed = f
                    .get(3)
                    .is_some_and(|m| m.split(',').any(|u| u.trim() == member));
                if let (true, Some(gid)) = (listed, id_field(&f, 2))
                    && !groups.contains(&gid)
                {
                    groups.push(gid);
                }
            }
        }
        return Ok(User {
            id: format!("{uid}:{primary}"),
            groups,
        });
    }
    let gid = match group {
        None => primary,
        Some(g) => match numeric(g) {
            Some(gid) => gid,
            None => etc_db::entries(&read_db(&view, "/etc/group")?)
                .find(|f| f.first() == Some(&g))
                .and_then(|f| id_field(&f, 2))
                .ok_or_else(|| {
                    OpError::new(format!(
                        "unable to find group {g}: no matching entries in group file"
                    ))
                })?,
        },
    };
    Ok(User {
        id: format!("{uid}:{gid}"),
        groups: vec![gid],
    })
}

fn id_field(fields: &[&str], i: usize) -> Option<u32> {
    fields.get(i)?.trim().parse().ok()
}

/// The text of `file` in the view; empty when it does not exist.
fn read_db(view: &LayeredView<'_>, file: &str) -> Result<String, OpError> {
    etc_db::read(view, file).map_err(|e| OpError::new(format!("reading {file}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use buildd_snapshot::LayerId;
    use std::fs;

    fn base(store: &LayerStore) -> Snapshot {
        let p = store.begin().unwrap();
        fs::create_dir(p.path().join("etc")).unwrap();
        fs::write(
            p.path().join("etc/passwd"),
            "root:x:0:0::/root:/bin/sh\napp:x:1000:1001::/home/app:/bin/sh\n",
        )
        .unwrap();
        fs::write(p.path().join("etc/group"), "root:x:0:\nstaff:x:50:app\n").unwrap();
        let id = LayerId::new("e7c").unwrap();
        p.commit(&id).unwrap();
        Snapshot::new(vec![id])
    }

    #[test]
    fn names_numbers_and_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let store = LayerStore::open(dir.path()).unwrap();
        let snap = base(&store);
        let r = |u: &str| resolve(&store, &snap, u).map(|u| u.id);
        let groups = |u: &str| resolve(&store, &snap, u).unwrap().groups;
        assert_eq!(groups("app"), [1001, 50]);
        assert_eq!(groups("1000"), [1001, 50]);
        assert_eq!(groups("app:staff"), [50]);
        assert_eq!(groups(""), [0]);
        assert_eq!(groups("4242"), [0]);
        assert_eq!(r("").unwrap(), "0:0");
        assert_eq!(r("app").unwrap(), "1000:1001");
        assert_eq!(r("app:staff").unwrap(), "1000:50");
        assert_eq!(r("app:7").unwrap(), "1000:7");
        assert_eq!(r("1000").unwrap(), "1000:1001");
        assert_eq!(r("4242").unwrap(), "4242:0");
        assert_eq!(r("5:6").unwrap(), "5:6");
        assert_eq!(r("5:staff").unwrap(), "5:50");
        let e = r("nobody").unwrap_err().to_string();
        assert!(e.contains("unable to find user nobody"), "{e}");
        let e = r("app:wheel").unwrap_err().to_string();
        assert!(e.contains("unable to find group wheel"), "{e}");
        // No /etc at all: only numbers work.
        let scratch = Snapshot::scratch();
        assert_eq!(resolve(&store, &scratch, "7").unwrap().id, "7:0");
        assert_eq!(resolve(&store, &scratch, "").unwrap().id, "0:0");
        assert!(resolve(&store, &scratch, "app").is_err());
    }
}
