//! Numbers that must not reach a production configuration: a lawyer (a
//! coordinator is one) whose number is still one of the shipped example
//! phones file's, or is in a fictional range (the demo roster's). Offers —
//! her number and where she is — would go to whoever owns the example
//! number, or to nobody. A problem names the lawyer, never the number.

use super::Roster;
use crate::phone::PhoneNumber;
use crate::problem::Problem;

/// The shipped example phones file, as `roster.phones.toml` starts when it
/// is copied from it (docs/roster.md, Quick start).
pub const EXAMPLE_FILE: &str = "roster.phones.example.toml";
const EXAMPLE: &str = include_str!("../../../config/roster.phones.example.toml");

/// Every number in the shipped example phones file.
pub fn example_numbers() -> Vec<PhoneNumber> {
    let table: toml::Table = toml::from_str(EXAMPLE).unwrap_or_default();
    table
        .values()
        .filter_map(toml::Value::as_str)
        .filter_map(|n| PhoneNumber::parse_international(n).ok())
        .collect()
}

impl Roster {
    /// Errors for a production configuration (`why` says why it is one):
    /// every lawyer still on an example or a fictional number.
    pub fn production_problems(&self, why: &str) -> Vec<Problem> {
        let examples = example_numbers();
        let mut out = Vec::new();
        for l in self.lawyers() {
            let msg = if examples.contains(&l.phone) {
                format!(
                    "her number is still the example number from {EXAMPLE_FILE}, in a production configuration ({why}): offers, with a woman's number and where she is, would go to whoever owns it. Put her real number"
                )
            } else if l.phone.is_fictional() {
                format!(
                    "her number is in a fictional range no phone answers (a demo roster's), in a production configuration ({why}): offers would reach nobody. Use the real roster and her real number"
                )
            } else {
                continue;
            };
            out.push(Problem::error(
                &self.source,
                format!("lawyers.{}", l.id),
                msg,
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    /// One city whose coordinator `c` takes her number from `C`.
    const CITY: &str = r#"
[cities.x]
names = { en = "X" }
time_zone = "Asia/Bishkek"
country = "KG"
coordinator = "c"
team = ["c"]
[cities.x.escalation]
levels = [{ kind = "coordinator", wait_minutes = 5 }]
unanswered_after_minutes = 10
[lawyers.c]
name = "C"
languages = ["en"]
cities = ["x"]
phone_env = "C"
"#;

    /// Every number written in the example file, read from the file on
    /// disk, so the list and the file cannot drift apart.
    #[test]
    fn every_number_of_the_example_file_is_caught() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/config/roster.phones.example.toml"
        );
        let text = std::fs::read_to_string(path).unwrap();
        let table: toml::Table = toml::from_str(&text).unwrap();
        assert!(table.len() >= 10, "{table:?}");
        let mut roster = String::from(CITY);
        let mut env: BTreeMap<String, String> =
            [("C".to_owned(), "+996700123456".to_owned())].into();
        for (i, (id, number)) in table.iter().enumerate() {
            let number = number.as_str().unwrap();
            roster.push_str(&format!(
                "[lawyers.l{i}]\nname = {id:?}\nlanguages = [\"en\"]\ncities = [\"x\"]\nphone_env = \"L{i}\"\n"
            ));
            env.insert(format!("L{i}"), number.to_owned());
        }
        let env: BTreeMap<&str, &str> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let (r, _) = super::super::parse(&roster, "roster.toml", std::path::Path::new("."), &env)
            .expect("the roster loads");
        let problems: Vec<String> = r
            .production_problems("privacy.require_pii_key = true")
            .iter()
            .map(ToString::to_string)
            .collect();
        for i in 0..table.len() {
            let want = format!(
                "roster.toml: lawyers.l{i}: her number is still the example number from roster.phones.example.toml, in a production configuration (privacy.require_pii_key = true)"
            );
            assert!(
                problems.iter().any(|p| p.starts_with(&want)),
                "{want}\n{problems:#?}"
            );
        }
        assert_eq!(
            problems.len(),
            table.len(),
            "c's real number passes: {problems:#?}"
        );
    }

    #[test]
    fn a_fictional_number_is_caught() {
        let roster = CITY;
        for (number, caught) in [
            ("+44 7700 900102", true),
            ("+1 202 555 0143", true),
            ("+996 700 123 456", false),
        ] {
            let env: BTreeMap<&str, &str> = [("C", number)].into();
            let (r, _) =
                super::super::parse(roster, "roster.toml", std::path::Path::new("."), &env)
                    .expect("the roster loads");
            let problems = r.production_problems("why");
            assert_eq!(
                problems.len(),
                usize::from(caught),
                "{number}: {problems:?}"
            );
            if caught {
                assert!(
                    problems[0]
                        .to_string()
                        .starts_with("roster.toml: lawyers.c: her number is in a fictional range"),
                    "{problems:?}"
                );
                assert!(
                    !problems[0].to_string().contains("7700"),
                    "no number in a problem"
                );
            }
        }
    }
}
