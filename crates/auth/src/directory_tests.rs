//! Tests of the account store (kept beside it, in their own file).

use super::*;

fn new_user(name: &str, role: Option<Role>) -> NewUser {
    NewUser { username: name.into(), display_name: None, role, password: Some(Secret::new("a long enough passphrase")) }
}

fn sso(subject: &str, username: &str, role: Option<Option<Role>>) -> ExternalLogin {
    ExternalLogin {
        org: "default".into(),
        identity: ExternalIdentity {
            provider: "okta".into(),
            issuer: "https://idp.example.com".into(),
            subject: subject.into(),
        },
        username: username.into(),
        display_name: Some("Ann Example".into()),
        role,
    }
}

fn ready(outcome: ExternalSignIn) -> User {
    match outcome {
        ExternalSignIn::Ready(user) => user,
        other => panic!("expected a ready account, got {other:?}"),
    }
}

#[test]
fn single_sign_on_accounts_follow_the_subject_not_the_name() {
    let dir = tempfile::tempdir().unwrap();
    let directory = Directory::open(dir.path(), "default").unwrap();
    directory.create_organization("other", "Other").unwrap();

    let ann =
        ready(directory.sign_in_external(&sso("s-ann", "Ann@Example.com", Some(Some(Role::SecurityReader)))).unwrap());
    assert_eq!(
        (ann.username.as_str(), ann.role, ann.display_name.as_str()),
        ("ann@example.com", Some(Role::SecurityReader), "Ann Example")
    );
    assert!(ann.password_hash.is_none());
    assert_eq!(ann.view().identity_provider.as_deref(), Some("okta"));

    // The provider renames her and changes her role: same account.
    let renamed = ready(directory.sign_in_external(&sso("s-ann", "ann.smith@example.com", Some(None))).unwrap());
    assert_eq!(renamed.id, ann.id);
    assert_eq!((renamed.username.as_str(), renamed.role), ("ann.smith@example.com", None));
    // Roles managed in Signet are left alone.
    directory
        .update_user("default", &ann.id, UserPatch { role: Some(Some(Role::ReportsReader)), ..UserPatch::default() })
        .unwrap();
    assert_eq!(
        ready(directory.sign_in_external(&sso("s-ann", "ann.smith@example.com", None)).unwrap()).role,
        Some(Role::ReportsReader)
    );

    // A password account's name does not open it to another identity.
    directory.create_user("default", new_user("bob@example.com", Some(Role::GlobalAdministrator))).unwrap();
    assert!(matches!(
        directory.sign_in_external(&sso("s-bob", "bob@example.com", None)).unwrap(),
        ExternalSignIn::Refused(_)
    ));
    // Nor does a name linked to another identity, or one of another organisation.
    assert!(matches!(
        directory.sign_in_external(&sso("s-imposter", "ann.smith@example.com", None)).unwrap(),
        ExternalSignIn::Refused(_)
    ));
    directory.create_user("other", NewUser { password: None, ..new_user("carl@example.com", None) }).unwrap();
    assert!(matches!(
        directory.sign_in_external(&sso("s-carl", "carl@example.com", None)).unwrap(),
        ExternalSignIn::Refused(_)
    ));

    // An account an administrator created for single sign-on (no password) is linked.
    let dana = directory
        .create_user("default", NewUser { password: None, ..new_user("dana@example.com", Some(Role::GlobalReader)) })
        .unwrap();
    let linked = ready(directory.sign_in_external(&sso("s-dana", "dana@example.com", None)).unwrap());
    assert_eq!((linked.id.as_str(), linked.role), (dana.id.as_str(), Some(Role::GlobalReader)));

    // Disabled accounts stay out, and nothing about them changes.
    directory.update_user("default", &dana.id, UserPatch { disabled: Some(true), ..UserPatch::default() }).unwrap();
    match directory.sign_in_external(&sso("s-dana", "dana@example.com", Some(Some(Role::GlobalAdministrator)))).unwrap()
    {
        ExternalSignIn::Disabled(user) => assert_eq!(user.role, Some(Role::GlobalReader)),
        other => panic!("expected disabled, got {other:?}"),
    }

    // Links survive a restart.
    let reopened = Directory::open(dir.path(), "default").unwrap();
    assert_eq!(ready(reopened.sign_in_external(&sso("s-ann", "ann.smith@example.com", None)).unwrap()).id, ann.id);
}

#[test]
fn accounts_and_keys_survive_reopening_without_secrets_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let directory = Directory::open(dir.path(), "default").unwrap();
    assert!(!directory.has_admin());
    let admin =
        directory.create_user("default", new_user("Admin@Example.com", Some(Role::GlobalAdministrator))).unwrap();
    assert_eq!(admin.username, "admin@example.com");
    let (key, token) =
        directory.create_key("default", "collector", KeyKind::Ingest { app: None }, &admin.username).unwrap();
    assert!(directory.authenticate_key(token.expose()).is_some());
    directory.flush_key_use().unwrap();

    let text = std::fs::read_to_string(dir.path().join("accounts.json")).unwrap();
    assert!(!text.contains("a long enough passphrase"));
    assert!(!text.contains(token.expose()));
    assert!(!text.contains(&token.expose()[21..]), "key secret stored");

    let reopened = Directory::open(dir.path(), "default").unwrap();
    assert!(reopened.has_admin());
    let principal = reopened.authenticate_key(token.expose()).unwrap();
    assert_eq!(principal.org, "default");
    assert_eq!(principal.grant, Grant::IngestKey);
    assert!(reopened.keys("default")[0].last_used_date_time.is_some());
    assert_eq!(reopened.key("default", &key.id).unwrap().name, "collector");
}

#[test]
fn keys_fail_when_forged_or_revoked() {
    let dir = tempfile::tempdir().unwrap();
    let directory = Directory::open(dir.path(), "default").unwrap();
    let (key, token) =
        directory.create_key("default", "r", KeyKind::Read { role: Role::GlobalReader }, "admin").unwrap();
    let mut forged = token.expose().to_string();
    let last = forged.pop().unwrap();
    forged.push(if last == 'A' { 'B' } else { 'A' });
    assert!(directory.authenticate_key(&forged).is_none());
    assert!(directory.authenticate_key("sgk_").is_none());
    assert!(directory.authenticate_key("sgk_zzzzzzzzzzzzzzzz_abc").is_none());
    assert!(directory.authenticate_key("Bearer whatever").is_none());
    assert!(directory.authenticate_key(token.expose()).is_some());
    directory.revoke_key("default", &key.id).unwrap();
    assert!(directory.authenticate_key(token.expose()).is_none());
    assert!(matches!(directory.revoke_key("other", &key.id), Err(AuthError::NotFound(_))));
}

#[test]
fn the_last_global_administrator_stays() {
    let dir = tempfile::tempdir().unwrap();
    let directory = Directory::open(dir.path(), "default").unwrap();
    let admin = directory.create_user("default", new_user("a@x", Some(Role::GlobalAdministrator))).unwrap();
    let demote = UserPatch { role: Some(Some(Role::GlobalReader)), ..UserPatch::default() };
    assert!(matches!(directory.update_user("default", &admin.id, demote), Err(AuthError::Conflict(_))));
    let disable = UserPatch { disabled: Some(true), ..UserPatch::default() };
    assert!(matches!(directory.update_user("default", &admin.id, disable), Err(AuthError::Conflict(_))));
    assert!(matches!(directory.delete_user("default", &admin.id), Err(AuthError::Conflict(_))));
    directory.create_user("default", new_user("b@x", Some(Role::GlobalAdministrator))).unwrap();
    directory.delete_user("default", &admin.id).unwrap();
}

#[test]
fn names_are_unique_and_organisations_must_exist() {
    let dir = tempfile::tempdir().unwrap();
    let directory = Directory::open(dir.path(), "default").unwrap();
    directory.create_user("default", new_user("a@x", None)).unwrap();
    assert!(matches!(directory.create_user("default", new_user("A@X", None)), Err(AuthError::Conflict(_))));
    assert!(matches!(directory.create_user("nowhere", new_user("b@x", None)), Err(AuthError::NotFound(_))));
    directory.create_organization("contoso", "Contoso").unwrap();
    let user = directory.create_user("contoso", new_user("b@x", Some(Role::ReportsReader))).unwrap();
    let principal = directory.principal_for_user(&user.id).unwrap();
    assert_eq!(principal.org, "contoso");
    assert!(!principal.home);
    assert!(!principal.allows(Permission::ReadMetrics));
    assert!(directory.user("default", &user.id).is_none(), "another organisation's account is invisible");
}

#[test]
fn key_parsing_is_strict() {
    assert_eq!(parse_key("sgk_0123456789abcdef_secret"), Some(("0123456789abcdef", "secret")));
    assert_eq!(parse_key("sgk_0123456789abcdef_"), None);
    assert_eq!(parse_key("sgk_0123456789abcdeg_secret"), None);
    assert_eq!(parse_key("sgk_é123456789abcde_secret"), None);
    assert_eq!(parse_key("xyz_0123456789abcdef_secret"), None);
}
