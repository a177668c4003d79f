use std::path::Path;

use buildd_oci::{Compression, ImageConfig, LayerBlob};

use super::*;
use crate::export::record_layer_blob;
use crate::images::now_rfc3339;

fn layer(root: &Root, id: &str) -> LayerId {
    let id = LayerId::new(id).unwrap();
    root.layers.begin().unwrap().commit(&id).unwrap();
    id
}

fn image(root: &Root, name: &str, layers: &[&str]) -> PathBuf {
    let record = ImageRecord {
        name: name.to_owned(),
        layers: layers.iter().map(|l| l.to_string()).collect(),
        config: ImageConfig::default(),
        created: now_rfc3339(),
    };
    root.images.put(&record).unwrap();
    root.images.path(name)
}

fn repair() -> FsckOptions {
    FsckOptions { repair: true }
}

fn results_key(name: &str) -> Digest {
    Digest::of(name.as_bytes())
}

/// A root with a good record, a record naming a missing layer, a blob whose content
/// changed (its layer-blob record now names a corrupt blob) and an image missing a
/// layer, left by a process that died mid-write.
struct Damaged {
    blob: PathBuf,
    image: PathBuf,
}

fn damaged(path: &Path) -> Damaged {
    let root = Root::open(path).unwrap();
    let aa = layer(&root, "aa");
    let put = |name: &str, value: &[u8]| {
        root.index
            .put(Table::Results, results_key(name).as_bytes(), value)
            .unwrap()
    };
    put("good", br#"["aa"]"#);
    put("dangling", br#"["aa","bb"]"#);
    let digest = root.content.put_bytes(b"hello").unwrap();
    let blob = LayerBlob {
        diff_id: Digest::of(b"tar"),
        digest,
        size: 5,
        media_type: Compression::Gzip.media_type(),
    };
    record_layer_blob(root.index.as_ref(), &aa, Compression::Gzip, &blob).unwrap();
    let image = image(&root, "app:latest", &["aa", "cc"]);
    let blob = root.content.path(&digest);
    drop(root);
    // Same size, other content: only hashing notices. Written by an earlier
    // process (older than the crashed one's marker), so recovery, which checks
    // only what the crashed process wrote, leaves it to fsck.
    fs::write(&blob, b"jello").unwrap();
    fs::File::options()
        .write(true)
        .open(&blob)
        .unwrap()
        .set_modified(std::time::SystemTime::now() - std::time::Duration::from_secs(3600))
        .unwrap();
    fs::write(path.join("ingest/77-0"), b"half a blob").unwrap();
    fs::create_dir(path.join("layers/.tmp-77-0")).unwrap();
    fs::write(path.join("dirty"), b"").unwrap();
    Damaged { blob, image }
}

#[test]
fn reports_each_problem_then_repairs_records_and_blobs_but_not_images() {
    let dir = tempfile::tempdir().unwrap();
    let d = damaged(dir.path());
    let dangling = results_key("dangling").to_string();
    let corrupt = Problem::CorruptBlob {
        path: d.blob.clone(),
        actual: Digest::of(b"jello"),
    };
    let missing_layer = Problem::RecordMissingLayer {
        table: Table::Results,
        key: dangling.clone(),
        layer: "bb".into(),
    };
    let bad_blob = Problem::RecordBadBlob {
        key: "aa/Gzip/".into(),
        digest: Digest::of(b"hello").to_string(),
        state: BlobState::Corrupt,
    };
    let image_layer = Problem::ImageMissingLayer {
        name: "app:latest".into(),
        path: d.image.clone(),
        layer: "cc".into(),
    };
    let expected = vec![
        corrupt.clone(),
        missing_layer,
        bad_blob,
        image_layer.clone(),
    ];

    let first = check(dir.path(), FsckOptions::default()).unwrap();
    assert_eq!(first.problems, expected);
    assert!(first.repairs.is_empty());
    assert_eq!((first.blobs, first.records, first.images), (1, 3, 1));
    assert!(first.notes.contains(&Note::Unclean), "{:?}", first.notes);
    for leftover in ["ingest/77-0", "layers/.tmp-77-0"] {
        assert!(
            first.notes.contains(&Note::Leftover {
                path: dir.path().join(leftover),
                what: if leftover.starts_with("ingest") {
                    "an interrupted blob write"
                } else {
                    "a layer being written"
                },
                removed: true,
            }),
            "{leftover}: {:?}",
            first.notes
        );
    }
    assert!(d.blob.exists(), "a check without repair changes nothing");
    assert_eq!(
        first.summary(),
        "fsck: 1 blobs, 3 records, 1 images checked; 4 problems"
    );

    let repaired = check(dir.path(), repair()).unwrap();
    assert_eq!(repaired.problems, expected);
    assert_eq!(
        repaired.repairs,
        vec![
            Repair::RemovedBlob {
                path: d.blob.clone()
            },
            Repair::RemovedRecord {
                table: Table::Results,
                key: dangling,
            },
            Repair::RemovedRecord {
                table: Table::LayerBlobs,
                key: "aa/Gzip/".into(),
            },
        ]
    );
    assert!(!d.blob.exists());
    assert!(repaired.notes.is_empty(), "{:?}", repaired.notes);
    assert!(!image_layer.repairable());
    assert!(
        image_layer
            .why_not_repaired()
            .unwrap()
            .contains("never discarded"),
    );

    let after = check(dir.path(), repair()).unwrap();
    assert_eq!(after.problems, vec![image_layer]);
    assert!(after.repairs.is_empty());
    assert!(d.image.exists(), "images are never removed");
    {
        let root = Root::open(dir.path()).unwrap();
        let good = root
            .index
            .get(Table::Results, results_key("good").as_bytes())
            .unwrap();
        assert_eq!(good.as_deref(), Some(&br#"["aa"]"#[..]));
        image(&root, "app:latest", &["aa"]);
    }
    let clean = check(dir.path(), FsckOptions::default()).unwrap();
    assert!(clean.is_clean(), "{:?}", clean.problems);
    assert_eq!(
        clean.summary(),
        "fsck: 0 blobs, 1 records, 1 images checked; 0 problems"
    );
}

#[test]
fn unreadable_and_stray_entries_are_reported_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let (unreadable, misfiled) = {
        let root = Root::open(dir.path()).unwrap();
        root.index
            .put(Table::Results, results_key("x").as_bytes(), b"not json")
            .unwrap();
        let theirs = image(&root, "other:1", &[]);
        let misfiled = root.images.path("elsewhere:1");
        fs::rename(&theirs, &misfiled).unwrap();
        let unreadable = theirs.with_file_name(format!("{}.json", "0".repeat(64)));
        fs::write(&unreadable, b"{").unwrap();
        (unreadable, misfiled)
    };
    let stray = dir.path().join("blobs/sha256/not-a-digest");
    fs::write(&stray, b"").unwrap();

    let report = check(dir.path(), repair()).unwrap();
    let kinds: Vec<_> = report
        .problems
        .iter()
        .map(|p| (p.to_string(), p.repairable()))
        .collect();
    assert_eq!(report.problems.len(), 4, "{kinds:?}");
    assert_eq!(
        report.problems[0],
        Problem::StrayBlobEntry {
            path: stray.clone()
        }
    );
    assert!(matches!(
        &report.problems[1],
        Problem::UnreadableRecord {
            table: Table::Results,
            ..
        }
    ));
    assert!(report.problems[2..].iter().any(|p| matches!(
        p,
        Problem::UnreadableImage { path, .. } if *path == unreadable
    )));
    assert!(report.problems[2..].contains(&Problem::MisfiledImage {
        path: misfiled.clone(),
        name: "other:1".into(),
    }));
    assert_eq!(report.repairs.len(), 1, "only the cache record goes");
    assert!(stray.exists() && unreadable.exists() && misfiled.exists());
}

#[test]
fn a_root_in_use_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let _held = Root::open(dir.path()).unwrap();
    let err = check(dir.path(), FsckOptions::default()).unwrap_err();
    assert!(
        matches!(err, FsckError::Root(RootError::InUse { .. })),
        "{err}"
    );
    assert!(err.to_string().contains("in use"), "{err}");
}

#[test]
fn a_missing_root_is_not_created() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nothing-here");
    let err = check(&path, FsckOptions::default()).unwrap_err();
    assert!(matches!(err, FsckError::NoRoot(_)), "{err}");
    assert!(!path.exists());
}

#[test]
fn problems_read_as_one_line_naming_the_record() {
    let p = Problem::RecordMissingLayer {
        table: Table::Results,
        key: "sha256:ab".into(),
        layer: "bb".into(),
    };
    assert_eq!(
        p.to_string(),
        "results record sha256:ab: names layer bb, which is missing"
    );
    assert_eq!(key_text(Table::LayerBlobs, b"aa/Gzip/"), "aa/Gzip/");
    assert_eq!(key_text(Table::LayerBlobs, b"a b"), "0x612062");
    assert_eq!(
        key_text(Table::Results, Digest::of(b"k").as_bytes()),
        Digest::of(b"k").to_string()
    );
}

/// Records of the current form: a result names a snapshot whose node records lead
/// down through every layer; a missing layer dooms the result and the node, and
/// nodes no result reaches go under repair.
#[test]
fn snapshot_records_are_followed_to_every_layer() {
    let dir = tempfile::tempdir().unwrap();
    let root = Root::open(dir.path()).unwrap();
    let (aa, bb) = (layer(&root, "aa"), layer(&root, "bb"));
    let index = root.index.as_ref();
    let good = buildd_snapshot::Snapshot::new([aa.clone()]);
    let broken = good.with_layer(bb.clone());
    let orphan = good.with_layer(LayerId::new("cc").unwrap());
    let value = crate::cache::snapshots::encode(index, &root.layers, &good).unwrap();
    index
        .put(Table::Results, results_key("good").as_bytes(), &value)
        .unwrap();
    let value = crate::cache::snapshots::encode(index, &root.layers, &broken).unwrap();
    index
        .put(Table::Results, results_key("broken").as_bytes(), &value)
        .unwrap();
    crate::cache::snapshots::encode(index, &root.layers, &orphan).unwrap();
    root.layers.remove(&bb).unwrap();
    root.flush().unwrap();
    drop(root);

    let report = check(dir.path(), repair()).unwrap();
    let missing = |table, key: String| Problem::RecordMissingLayer {
        table,
        key,
        layer: "bb".into(),
    };
    assert!(
        report
            .problems
            .contains(&missing(Table::Results, results_key("broken").to_string())),
        "{report:?}"
    );
    assert!(
        report
            .problems
            .contains(&missing(Table::Snapshots, broken.id().to_string())),
        "{report:?}"
    );
    let root = Root::open(dir.path()).unwrap();
    let left: Vec<Vec<u8>> = root
        .index
        .entries(Table::Snapshots)
        .unwrap()
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(left, vec![good.id().as_bytes().to_vec()]);
    assert!(
        root.index
            .get(Table::Results, results_key("good").as_bytes())
            .unwrap()
            .is_some()
    );
    assert!(
        root.index
            .get(Table::Results, results_key("broken").as_bytes())
            .unwrap()
            .is_none()
    );
}
