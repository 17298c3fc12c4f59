//! Problems with lawyers' numbers, from the environment or the phones
//! file: checked, and never echoed.

use super::*;

#[test]
fn phone_numbers_from_the_environment_are_checked_and_never_echoed() {
    let mut e = env();
    e.remove("P_AIDA");
    e.insert("P_BAKYT", "0555 000 012"); // national form: ambiguous
    e.insert("P_CHOLPON", "+996 555 0x0 013");
    e.insert("P_HALYNA", "+380 50 000 00 01"); // Larysa's number
    let text = format!("{BASE}{ROT_BISHKEK}")
        .replace(r#"phone_env = "P_IRYNA""#, r#"phone_env = "p-iryna""#);
    let p = problems_with(&text, &e);
    has(
        &p,
        r#"config/roster.toml: lawyers.aida.phone_env = "P_AIDA": environment variable P_AIDA is not set"#,
    );
    has(
        &p,
        r#"config/roster.toml: lawyers.bakyt.phone_env = "P_BAKYT": P_BAKYT does not hold a number in international form: must start with + and the country code"#,
    );
    has(
        &p,
        r#"config/roster.toml: lawyers.cholpon.phone_env = "P_CHOLPON": P_CHOLPON does not hold a number in international form: phone number has a character that is not a digit"#,
    );
    has(
        &p,
        "config/roster.toml: lawyers.larysa: has the same number as lawyers.halyna: replies are matched to a lawyer by number",
    );
    has(
        &p,
        r#"config/roster.toml: lawyers.iryna.phone_env = "p-iryna": not an environment variable name (capitals, digits and _)"#,
    );
    for line in &p {
        assert!(!line.contains("555") && !line.contains("00 01"), "{line}");
    }
}

#[test]
fn phone_numbers_from_the_phones_file_are_checked_and_never_echoed() {
    let dir = tempfile::tempdir().unwrap();
    let text = format!("phones_file = \"phones.toml\"\n{BASE}{ROT_BISHKEK}{ROT_POLTAVA}")
        .replace("phone_env = \"P_AIDA\"\n", "")
        .replace("phone_env = \"P_BAKYT\"\n", "")
        .replace("phone_env = \"P_CHOLPON\"\n", "");
    std::fs::write(
        dir.path().join("phones.toml"),
        "aida = \"+996 555 000 011\"\nbakyt = \"0555 000 012\"\ncholpon = 996555000013\nzarina = \"+996 555 000 099\"\n",
    )
    .unwrap();
    private(&dir.path().join("phones.toml")); // rewrites below keep the mode
    let display = dir.path().join("phones.toml").display().to_string();
    let p: Vec<String> = match parse(&text, "config/roster.toml", dir.path(), &env()) {
        Ok(_) => panic!("should fail"),
        Err(p) => p.iter().map(ToString::to_string).collect(),
    };
    has(
        &p,
        &format!(
            "{display}: bakyt: not a number in international form: must start with + and the country code"
        ),
    );
    has(
        &p,
        &format!(
            "{display}: cholpon: must be a quoted number in international form, like \"+996 …\""
        ),
    );
    has(
        &p,
        &format!("{display}: zarina: no lawyer with this id in config/roster.toml"),
    );
    for line in &p {
        assert!(!line.contains("555"), "{line}");
    }

    // A syntax error reports the line, never the text around it.
    std::fs::write(
        dir.path().join("phones.toml"),
        "aida = \"+996 555 000 011\"\nbakyt = +996 555 000 012\n",
    )
    .unwrap();
    let p = parse(&text, "config/roster.toml", dir.path(), &env()).unwrap_err();
    assert_eq!(p.len(), 1, "{p:#?}");
    assert_eq!(p[0].key, "line 2");
    assert!(!p[0].to_string().contains("555"));

    // Fixed, it loads; a lawyer missing from the file is named.
    std::fs::write(
        dir.path().join("phones.toml"),
        "aida = \"+996 555 000 011\"\nbakyt = \"+996 555 000 012\"\n",
    )
    .unwrap();
    let p = parse(&text, "config/roster.toml", dir.path(), &env()).unwrap_err();
    assert_eq!(
        p.iter().map(ToString::to_string).collect::<Vec<_>>(),
        [format!(
            "config/roster.toml: lawyers.cholpon: no number: add `cholpon = \"+…\"` to {display}, or set phone_env"
        )]
    );
}

#[test]
fn a_number_written_in_the_roster_is_refused_with_a_hint() {
    let text = BASE.replace("phone_env = \"P_AIDA\"", "phone = \"+996555000011\"");
    let p = problems(&text);
    assert_eq!(p.len(), 1);
    assert!(p[0].contains("unknown field `phone`"), "{}", p[0]);
    assert!(p[0].contains("numbers never go in this file"), "{}", p[0]);
    assert!(!p[0].contains("555"), "{}", p[0]);
}
