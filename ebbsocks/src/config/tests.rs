use super::*;

fn fixtures(kind: &str) -> Vec<(PathBuf, String)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/config")
        .join(kind);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("fixture directory exists")
        .map(|entry| entry.expect("readable entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "toml"))
        .map(|path| {
            let text = std::fs::read_to_string(&path).expect("readable fixture");
            (path, text)
        })
        .collect();
    files.sort();
    files
}

#[test]
fn embedded_default_is_valid_and_matches_the_code_defaults() {
    let parsed = Config::embedded_default();
    let coded = Config::default();
    assert_eq!(parsed.server.listen, coded.server.listen);
    assert_eq!(parsed.server.pool, coded.server.pool);
    assert_eq!(
        toml::to_string(&parsed).expect("serializes"),
        toml::to_string(&coded).expect("serializes")
    );
    assert_eq!(parsed.server.listen.to_string(), "127.0.0.1:1080");
    assert_eq!(parsed.auth.method, AuthMethod::None);
}

#[test]
fn every_valid_fixture_loads() {
    let files = fixtures("valid");
    assert!(files.len() >= 3, "valid fixtures are missing");
    for (path, _) in files {
        if let Err(err) = Config::load(&path) {
            panic!("{} should load: {err}", path.display());
        }
    }
}

/// Each invalid fixture starts with `# expect: <text>`; loading it must fail
/// with an error that names the file and contains that text.
#[test]
fn every_invalid_fixture_fails_with_file_key_and_reason() {
    let files = fixtures("invalid");
    assert!(files.len() >= 8, "invalid fixtures are missing");
    for (path, text) in files {
        let expected = text
            .lines()
            .next()
            .and_then(|line| line.strip_prefix("# expect: "))
            .unwrap_or_else(|| panic!("{} lacks an `# expect:` line", path.display()));
        let err = match Config::load(&path) {
            Ok(_) => panic!("{} should be rejected", path.display()),
            Err(err) => err.to_string(),
        };
        assert!(err.contains(&path.display().to_string()), "{err}");
        assert!(
            err.contains(expected),
            "{}: {err:?} lacks {expected:?}",
            path.display()
        );
    }
}

#[test]
fn missing_file_is_named() {
    let err = Config::load(Path::new("/nonexistent/ebbsocks.toml")).expect_err("must fail");
    assert!(err
        .to_string()
        .starts_with("/nonexistent/ebbsocks.toml: cannot read"));
}

#[test]
fn secrets_are_masked_in_debug_output() {
    let text = r#"
        [api]
        enabled = true
        token = "hunter2-token"
        [auth]
        method = "userpass"
        [[auth.users]]
        username = "alice"
        password_hash = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$YqTmBq5dNfMtbYsxVb4B0PR8qUHvTGsT7dM3mS6Yd2Q"
    "#;
    let config = Config::from_toml(text, Path::new("t.toml")).expect("valid");
    let debug = format!("{config:?}");
    assert!(!debug.contains("hunter2"), "{debug}");
    assert!(!debug.contains("YqTmBq5"), "{debug}");
    assert!(debug.contains("***"));
}
