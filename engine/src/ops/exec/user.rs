//! `USER name[:group]` resolved through the root filesystem's `/etc/passwd` and
//! `/etc/group`, as BuildKit does before starting the process.

use buildd_snapshot::{LayerStore, LayeredView, Snapshot, etc_db};

use crate::solver::OpError;

/// Numeric `uid:gid` for `user` (`user[:group]`, names or numbers). Empty is root.
/// A user without a group gets its primary group from `/etc/passwd`, or 0 when the
/// (numeric) user has no entry there.
pub(super) fn resolve(store: &LayerStore, base: &Snapshot, user: &str) -> Result<String, OpError> {
    if user.is_empty() {
        return Ok("0:0".to_owned());
    }
    let (name, group) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user, None),
    };
    let numeric = |s: &str| s.parse::<u32>().ok();
    if let (Some(uid), Some(gid)) = (numeric(name), group.and_then(numeric)) {
        return Ok(format!("{uid}:{gid}"));
    }
    let view = LayeredView::new(store, base).map_err(|e| OpError::new(e.to_string()))?;
    let passwd = read_db(&view, "/etc/passwd")?;
    let (uid, primary) = match numeric(name) {
        Some(uid) => {
            let gid = etc_db::entries(&passwd)
                .find(|f| id_field(f, 2) == Some(uid))
                .and_then(|f| id_field(&f, 3));
            (uid, gid.unwrap_or(0))
        }
        None => etc_db::entries(&passwd)
            .find(|f| f.first() == Some(&name))
            .and_then(|f| Some((id_field(&f, 2)?, id_field(&f, 3)?)))
            .ok_or_else(|| {
                OpError::new(format!(
                    "unable to find user {name}: no matching entries in passwd file"
                ))
            })?,
    };
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
    Ok(format!("{uid}:{gid}"))
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
        let r = |u: &str| resolve(&store, &snap, u);
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
        assert_eq!(resolve(&store, &scratch, "7").unwrap(), "7:0");
        assert!(resolve(&store, &scratch, "app").is_err());
    }
}
