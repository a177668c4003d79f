//! `ChownOpt` resolution against the `/etc/passwd` and `/etc/group` of the filesystem
//! being written, as BuildKit does.

use buildd_proto::llb::ChownOpt;

use crate::error::FileOpErrorKind;
use crate::etc_db;
use crate::view::LayeredView;

/// The uid/gid `opt` asks for, or None when it asks for nothing. A user without a
/// group gets the user's primary group when named, or the same number as its uid.
///
/// As BuildKit's file ops: a name the filesystem's `/etc/passwd` does not have
/// (or a filesystem without one) is uid 0 and gid 0, and a group name `/etc/group`
/// does not have leaves the gid as the user gave it. Neither is an error: a
/// `WORKDIR` under a `USER` the base does not know builds (issue 13).
pub(crate) fn resolve(
    view: &LayeredView<'_>,
    opt: Option<&ChownOpt>,
) -> Result<Option<(u32, u32)>, FileOpErrorKind> {
    let Some(opt) = opt else { return Ok(None) };
    let (mut uid, mut gid) = (None, None);
    if !opt.user_name.is_empty() {
        let (u, g) = lookup(view, "/etc/passwd", &opt.user_name)?
            .map(|f| (parse_id(f.get(2)), parse_id(f.get(3))))
            .and_then(|(u, g)| Some((u?, g?)))
            .or_else(|| numeric(&opt.user_name).map(|n| (n, n)))
            .unwrap_or((0, 0));
        (uid, gid) = (Some(u), Some(g));
    } else if let Some(u) = opt.uid {
        (uid, gid) = (Some(u), Some(u));
    }
    if !opt.group_name.is_empty() {
        let g = lookup(view, "/etc/group", &opt.group_name)?
            .and_then(|f| parse_id(f.get(2)))
            .or_else(|| numeric(&opt.group_name));
        gid = g.or(gid).or(Some(0));
    } else if let Some(g) = opt.gid {
        gid = Some(g);
    }
    if uid.is_none() && gid.is_none() {
        return Ok(None);
    }
    Ok(Some((uid.unwrap_or(0), gid.unwrap_or(0))))
}

fn numeric(s: &str) -> Option<u32> {
    s.parse().ok()
}

fn parse_id(field: Option<&String>) -> Option<u32> {
    field?.trim().parse().ok()
}

/// The `:`-separated fields of the line of database `file` whose first field is
/// `name`; None when the file or the line is missing.
fn lookup(
    view: &LayeredView<'_>,
    file: &str,
    name: &str,
) -> Result<Option<Vec<String>>, FileOpErrorKind> {
    let text = etc_db::read(view, file)?;
    Ok(etc_db::entries(&text)
        .find(|f| f.first() == Some(&name))
        .map(|f| f.into_iter().map(str::to_owned).collect()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::Snapshot;
    use crate::store::{LayerId, LayerStore};
    use std::fs;

    fn view_with_etc(store: &LayerStore) -> Snapshot {
        let p = store.begin().unwrap();
        fs::create_dir(p.path().join("etc")).unwrap();
        fs::write(
            p.path().join("etc/passwd"),
            "root:x:0:0::/root:/bin/sh\n# c\napp:x:1000:1001::/app:/bin/sh\n",
        )
        .unwrap();
        fs::write(p.path().join("etc/group"), "root:x:0:\nstaff:x:50:app\n").unwrap();
        let id = LayerId::new("e7c").unwrap();
        p.commit(&id).unwrap();
        Snapshot::new(vec![id])
    }

    fn opt(uid: Option<u32>, gid: Option<u32>, user: &str, group: &str) -> ChownOpt {
        ChownOpt {
            uid,
            gid,
            user_name: user.into(),
            group_name: group.into(),
        }
    }

    #[test]
    fn names_and_numbers() {
        let dir = tempfile::tempdir().unwrap();
        let store = LayerStore::open(dir.path()).unwrap();
        let snap = view_with_etc(&store);
        let view = LayeredView::new(&store, &snap).unwrap();
        let r = |o: ChownOpt| resolve(&view, Some(&o));
        assert_eq!(r(opt(None, None, "app", "")).unwrap(), Some((1000, 1001)));
        assert_eq!(
            r(opt(None, None, "app", "staff")).unwrap(),
            Some((1000, 50))
        );
        assert_eq!(r(opt(Some(7), None, "", "")).unwrap(), Some((7, 7)));
        assert_eq!(r(opt(Some(7), Some(8), "", "")).unwrap(), Some((7, 8)));
        assert_eq!(r(opt(None, None, "", "staff")).unwrap(), Some((0, 50)));
        assert_eq!(r(opt(None, None, "", "")).unwrap(), None);
        assert_eq!(resolve(&view, None).unwrap(), None);
        // Unknown names are root, as BuildKit resolves them (not an error).
        assert_eq!(r(opt(None, None, "nobody", "")).unwrap(), Some((0, 0)));
        assert_eq!(
            r(opt(None, None, "app", "wheel")).unwrap(),
            Some((1000, 1001))
        );
        assert_eq!(r(opt(None, None, "nobody", "wheel")).unwrap(), Some((0, 0)));
        assert_eq!(r(opt(Some(7), None, "", "wheel")).unwrap(), Some((7, 7)));
    }
}
