//! The compose rules: projects and services whose files, directories or definitions are
//! gone, judged only on what can be seen.

use super::*;

#[test]
fn orphaned_compose_needs_visible_evidence() {
    let mut web = running_web(3000);
    compose_labels(
        &mut web,
        "shop",
        "/src/shop",
        "docker-compose.yml,docker-compose.override.yml",
    );
    let mut snap = snapshot(proxied(3000), vec![web.clone()]);

    // Directory gone.
    snap.fs = fs(true, &[("/src/shop", false)]);
    let a = analyze(&snap);
    assert_eq!(kinds(&a), vec![Kind::OrphanedCompose]);
    assert_eq!(
        a.findings[0].evidence,
        Evidence::ComposeGone(findings::ComposeGone::WorkingDir("/src/shop".into()))
    );

    // Directory there but every (relative, v1) compose file gone.
    snap.fs = fs(
        true,
        &[
            ("/src/shop", true),
            ("/src/shop/docker-compose.yml", false),
            ("/src/shop/docker-compose.override.yml", false),
        ],
    );
    let a = analyze(&snap);
    assert_eq!(kinds(&a), vec![Kind::OrphanedCompose]);
    assert_eq!(
        a.findings[0].evidence,
        Evidence::ComposeGone(findings::ComposeGone::Files(vec![
            "/src/shop/docker-compose.yml".into(),
            "/src/shop/docker-compose.override.yml".into()
        ]))
    );

    // One file left: not orphaned.
    snap.fs = fs(
        true,
        &[
            ("/src/shop", true),
            ("/src/shop/docker-compose.yml", true),
            ("/src/shop/docker-compose.override.yml", false),
        ],
    );
    assert_eq!(kinds(&analyze(&snap)), vec![]);

    // Filesystem not visible (portreap in a container): never guess.
    snap.fs = fs(false, &[]);
    assert_eq!(kinds(&analyze(&snap)), vec![]);

    // Absolute (v2) file paths are taken as they are.
    let mut v2 = running_web(3000);
    compose_labels(&mut v2, "shop", "/src/shop", "/src/shop/compose.yaml");
    snap.containers = vec![v2];
    snap.fs = fs(
        true,
        &[("/src/shop", true), ("/src/shop/compose.yaml", false)],
    );
    assert_eq!(kinds(&analyze(&snap)), vec![Kind::OrphanedCompose]);
}

#[test]
fn a_superseded_project_in_the_same_directory_is_orphaned_only_on_a_port_clash() {
    let mut old = running_web(3000);
    old.name = "oldname_web_1".into();
    old.created = crate::model::Timestamp::parse("2026-11-25T10:00:00Z");
    compose_labels(&mut old, "oldname", "/src/app", "docker-compose.yml");
    let mut new = bare_container(ID_HOSTNET, "app_web_1", ContainerState::Created, None);
    new.created = crate::model::Timestamp::parse("2026-11-25T11:00:00Z");
    new.requested.push(asks_for(3000));
    compose_labels(&mut new, "app", "/src/app", "docker-compose.yml");
    let mut snap = snapshot(proxied(3000), vec![old.clone(), new.clone()]);
    snap.fs = fs(
        true,
        &[("/src/app", true), ("/src/app/docker-compose.yml", true)],
    );
    let a = analyze(&snap);
    assert_eq!(kinds(&a), vec![Kind::OrphanedCompose]);
    assert_eq!(a.findings[0].container, Some(0));
    assert_eq!(
        a.findings[0].evidence,
        Evidence::Superseded { by: "app".into() }
    );

    // The newer project listed by another engine (a user's own, labelled after this
    // directory) makes nothing of this engine's superseded.
    let mut elsewhere = new.clone();
    elsewhere.engine = 1;
    snap.engines = vec![snap.engine.clone()];
    snap.containers = vec![old.clone(), elsewhere];
    assert_eq!(kinds(&analyze(&snap)), vec![], "across engines");
    snap.engines.clear();

    // A deliberate second instance on other ports is left alone.
    new.requested[0].host_ports = Some(crate::portspec::PortRange {
        start: 3001,
        end: 3001,
    });
    snap.containers = vec![old.clone(), new.clone()];
    assert_eq!(kinds(&analyze(&snap)), vec![]);

    // The older project matching the directory name is the current one: nothing stale.
    new.requested[0].host_ports = Some(crate::portspec::PortRange {
        start: 3000,
        end: 3000,
    });
    let mut renamed_old = old;
    compose_labels(&mut renamed_old, "app", "/src/app", "docker-compose.yml");
    compose_labels(&mut new, "feature", "/src/app", "docker-compose.yml");
    snap.containers = vec![renamed_old, new];
    assert_eq!(kinds(&analyze(&snap)), vec![]);
}

#[test]
fn an_unreadable_compose_directory_is_not_judged_gone() {
    let mut web = running_web(3000);
    compose_labels(&mut web, "shop", "/home/alice/shop", "docker-compose.yml");
    let mut snap = snapshot(Host::new(), vec![web]);
    // The directory cannot be read; its file, behind it, was judged gone by a race.
    snap.fs = fs(true, &[("/home/alice/shop/docker-compose.yml", false)]);
    snap.fs.unjudged.insert(
        "/home/alice/shop".into(),
        "Permission denied (os error 13)".into(),
    );
    assert!(!kinds(&analyze(&snap)).contains(&Kind::OrphanedCompose));
}

#[test]
fn a_service_its_files_no_longer_define_is_an_orphan() {
    const FILES: &str = "/src/shop/compose.yaml";
    let mut web = running_web(3000);
    compose_labels(&mut web, "shop", "/src/shop", FILES);
    let mut snap = snapshot(proxied(3000), vec![web.clone()]);
    snap.fs = fs(true, &[("/src/shop", true), (FILES, true)]);
    let with = |snap: &mut Snapshot, d| {
        snap.fs.definitions.insert(FILES.into(), d);
        analyze(snap)
    };
    // Renamed away, nothing blocked: a suspect.
    let a = with(&mut snap, defined(&["frontend"], None));
    assert_eq!(kinds(&a), vec![Kind::OrphanService]);
    assert_eq!(a.findings[0].severity, findings::Severity::Suspect);
    assert_eq!(
        a.findings[0].evidence,
        Evidence::ServiceUndefined {
            service: "web".into(),
            blocks: 0
        }
    );
    // Still defined, defined by another project's name, or not read: quiet.
    assert_eq!(kinds(&with(&mut snap, defined(&["web"], None))), vec![]);
    assert_eq!(kinds(&with(&mut snap, defined(&[], Some("store")))), vec![]);
    let unread = crate::model::ComposeDefinition::NotJudged {
        reason: "not valid YAML".into(),
    };
    assert_eq!(kinds(&with(&mut snap, unread)), vec![]);
    // A one-off of a removed service is compose's to ignore too.
    let mut oneoff = web.clone();
    oneoff
        .labels
        .insert("com.docker.compose.oneoff".into(), "True".into());
    snap.containers = vec![oneoff];
    assert_eq!(
        kinds(&with(&mut snap, defined(&["frontend"], None))),
        vec![]
    );
    // The renamed service's container could not start on the orphan's port: a leak.
    let mut renamed = bare_container(ID_HOSTNET, "shop-frontend-1", ContainerState::Created, None);
    compose_labels(&mut renamed, "shop", "/src/shop", FILES);
    renamed
        .labels
        .insert("com.docker.compose.service".into(), "frontend".into());
    renamed.error = Some("driver failed programming external connectivity on endpoint shop-frontend-1: Bind for 0.0.0.0:3000 failed: port is already allocated".into());
    snap.containers = vec![web, renamed];
    let a = with(&mut snap, defined(&["frontend"], None));
    let orphan = a
        .findings
        .iter()
        .find(|f| f.kind == Kind::OrphanService)
        .expect("an orphan");
    assert_eq!(orphan.severity, findings::Severity::Leak);
    // The port is marked, and coloured in the table, by that severity, not the kind's.
    let marked = a
        .ports
        .iter()
        .find(|p| p.port == 3000 && p.findings.contains(&Kind::OrphanService))
        .expect("the orphan's port marked");
    assert_eq!(marked.severity, Some(findings::Severity::Leak));
    let style = crate::report::table::Style {
        tty: true,
        color: true,
    };
    let table = crate::report::table::scan(&snap, &a, |p| p.port == 3000, style, "");
    let line = |name: &str| table.lines().find(|l| l.contains(name)).unwrap().to_owned();
    // Red (as `leak` is in the findings below), not the kind's yellow; the blocked start
    // beside it is information (cyan).
    assert!(
        line("web [shop/web]").contains("\x1b[38;5;9m orphan-service"),
        "{table}"
    );
    assert!(
        line("shop-frontend-1").contains("\x1b[38;5;14m blocked-start"),
        "{table}"
    );
    assert_eq!(
        orphan.evidence,
        Evidence::ServiceUndefined {
            service: "web".into(),
            blocks: 1
        }
    );
    assert!(
        orphan.reason.contains("shop-frontend-1 (service frontend)"),
        "{}",
        orphan.reason
    );
}
