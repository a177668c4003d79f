mod common;

use std::fs;

use buildd_snapshot::{LayerId, LayerStore, SnapshotError};

#[test]
fn layer_ids_are_hex_only() {
    assert!(LayerId::new("0123456789abcdef").is_ok());
    for bad in ["", "ABC", "../x", "a/b", ".tmp-1", "g", &"a".repeat(129)] {
        assert!(
            matches!(LayerId::new(bad), Err(SnapshotError::InvalidLayerId(_))),
            "{bad:?}"
        );
    }
}

#[test]
fn commit_moves_the_layer_into_place() {
    let (_d, store) = common::store();
    let p = store.begin().unwrap();
    let tmp = p.path().to_owned();
    fs::write(tmp.join("f"), "x").unwrap();
    let id = LayerId::new("aa").unwrap();
    assert!(!store.exists(&id));
    p.commit(&id).unwrap();
    assert!(store.exists(&id));
    assert!(!tmp.exists());
    assert_eq!(
        fs::read_to_string(store.diff_dir(&id).join("f")).unwrap(),
        "x"
    );
}

#[test]
fn commit_onto_an_existing_id_keeps_the_first_and_discards_the_second() {
    let (_d, store) = common::store();
    let id = LayerId::new("bb").unwrap();
    let first = store.begin().unwrap();
    fs::write(first.path().join("f"), "first").unwrap();
    first.commit(&id).unwrap();
    let second = store.begin().unwrap();
    let tmp = second.path().to_owned();
    fs::write(tmp.join("f"), "second").unwrap();
    second.commit(&id).unwrap();
    assert!(!tmp.exists());
    assert_eq!(
        fs::read_to_string(store.diff_dir(&id).join("f")).unwrap(),
        "first"
    );
}

#[test]
fn dropping_a_pending_layer_removes_it() {
    let (_d, store) = common::store();
    let p = store.begin().unwrap();
    let tmp = p.path().to_owned();
    fs::create_dir(tmp.join("sub")).unwrap();
    assert!(tmp.is_dir());
    drop(p);
    assert!(!tmp.exists());
}

#[test]
fn open_sweeps_what_a_crash_left() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("store");
    let store = LayerStore::open(&root).unwrap();
    let p = store.begin().unwrap();
    let tmp = p.path().to_owned();
    fs::write(tmp.join("f"), "x").unwrap();
    std::mem::forget(p); // as if the process died before committing or dropping
    let kept = LayerId::new("cc").unwrap();
    store.begin().unwrap().commit(&kept).unwrap();
    assert!(tmp.exists());
    let store = LayerStore::open(&root).unwrap();
    assert!(!tmp.exists());
    assert!(store.exists(&kept));
}

#[test]
fn remove_deletes_a_layer_and_reports_a_missing_one() {
    let (_d, store) = common::store();
    let id = LayerId::new("dd").unwrap();
    let p = store.begin().unwrap();
    fs::create_dir_all(p.path().join("a/b")).unwrap();
    p.commit(&id).unwrap();
    store.remove(&id).unwrap();
    assert!(!store.exists(&id));
    let e = store.remove(&id).unwrap_err();
    assert_eq!(e.to_string(), "layer dd does not exist");
    let left: Vec<_> = fs::read_dir(store.diff_dir(&id).parent().unwrap())
        .unwrap()
        .collect();
    assert!(left.is_empty(), "{left:?}");
}
