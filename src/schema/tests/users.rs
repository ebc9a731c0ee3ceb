//! `user` and `group` under `[jobs.X]`: what the load checks (the spelling,
//! `group` only with `user`) and where it records the keys for the checks
//! made on the machine that runs tasks.

use super::{Project, assert_error};

#[test]
fn user_and_group_reach_the_job_and_their_places_are_kept() {
    let p = Project::new();
    p.job("a").job("b").job("c");
    p.write(
        "schema/a.toml",
        "[jobs.a]\nuser = \"reports\"\ngroup = \"mail\"\n\n[jobs.b]\nuser = \"1001\"\n",
    );
    let set = p.load_ok();
    assert_eq!(set.jobs["a"].user.as_deref(), Some("reports"));
    assert_eq!(set.jobs["a"].group.as_deref(), Some("mail"));
    assert_eq!(set.jobs["b"].user.as_deref(), Some("1001"));
    assert_eq!(set.jobs["b"].group, None);
    assert_eq!(set.jobs["c"].user, None);
    let a = &set.identity_keys["a"];
    let user = a.user.as_ref().expect("user place");
    assert_eq!((user.line, user.key.as_str()), (2, "jobs.a.user"));
    let group = a.group.as_ref().expect("group place");
    assert_eq!((group.line, group.key.as_str()), (3, "jobs.a.group"));
    assert_eq!(group.file, std::path::Path::new("schema/a.toml"));
    assert!(set.identity_keys["b"].group.is_none());
    assert!(!set.identity_keys.contains_key("c"));
}

#[test]
fn badly_spelled_users_and_a_group_without_user_are_errors() {
    let p = Project::new();
    p.job("a").job("b").job("c");
    p.write(
        "schema/a.toml",
        "[jobs.a]\nuser = \"\"\n\n[jobs.b]\nuser = \"x:y\"\ngroup = \"-g\"\n\n[jobs.c]\ngroup = \"mail\"\n\n[jobs.d]\nuser = 7\n",
    );
    let errors = p.load_err();
    assert_error(
        &errors,
        "schema/a.toml",
        2,
        "jobs.a.user",
        "invalid user name \"\"",
    );
    assert_error(
        &errors,
        "schema/a.toml",
        5,
        "jobs.b.user",
        "invalid user name",
    );
    assert_error(
        &errors,
        "schema/a.toml",
        6,
        "jobs.b.group",
        "invalid group name",
    );
    assert_error(
        &errors,
        "schema/a.toml",
        9,
        "jobs.c.group",
        "`group` needs `user`",
    );
    assert_error(
        &errors,
        "schema/a.toml",
        12,
        "jobs.d.user",
        "expected a quoted string",
    );
}
