//! `hotline texts export` / `import`, run as a translator's operator would:
//! on a copy of the shipped config, flows and lawyers' texts, through the
//! real binary. The CSV is edited as a spreadsheet would save it.

mod common;

use std::path::PathBuf;
use std::process::Command;

/// A copy of the shipped configuration in a scratch folder, laid out as in
/// the repository (`config/`, `flows/`).
struct Copy {
    _dir: tempfile::TempDir,
    root: PathBuf,
}

impl Copy {
    fn new() -> Copy {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        for sub in ["config", "flows"] {
            std::fs::create_dir_all(root.join(sub)).unwrap();
        }
        for file in [
            "config/hotline.toml",
            "config/lawyer_texts.toml",
            "config/demo-roster.toml",
            "config/demo-roster.phones.toml",
            "flows/legal_help.toml",
        ] {
            std::fs::copy(common::root().join(file), root.join(file)).unwrap();
        }
        Copy { _dir: dir, root }
    }

    fn read(&self, file: &str) -> String {
        std::fs::read_to_string(self.root.join(file)).unwrap()
    }

    /// Run the binary on this copy: (exit code, stdout, stderr).
    fn hotline(&self, args: &[&str]) -> (Option<i32>, String, String) {
        let out = Command::new(common::binary())
            .args(args)
            .args(["--config", "config/hotline.toml"])
            .current_dir(&self.root)
            .env_remove("HOTLINE_CONFIG")
            .env_remove("HOTLINE_REDIS_URL")
            .output()
            .expect("binary runs");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    fn export(&self) -> String {
        let (code, csv, err) = self.hotline(&["texts", "export", "--format", "csv"]);
        assert_eq!(code, Some(0), "{err}");
        csv
    }

    fn import(&self, csv: &str, extra: &[&str]) -> (Option<i32>, String, String) {
        let path = self.root.join("edited.csv");
        std::fs::write(&path, csv).unwrap();
        let path = path.display().to_string();
        let mut args = vec!["texts", "import", path.as_str()];
        args.extend_from_slice(extra);
        self.hotline(&args)
    }
}

/// The exported row for `key_path` in `file`: its spreadsheet row number
/// (the header is row 1) and its line. The shipped texts have no line
/// breaks, so each row is one line.
fn row<'a>(csv: &'a str, file: &str, key_path: &str) -> (usize, &'a str) {
    let prefix = format!("{file},{key_path},");
    csv.lines()
        .enumerate()
        .find(|(_, l)| l.starts_with(&prefix))
        .map(|(i, l)| (i + 1, l))
        .unwrap_or_else(|| panic!("no row {prefix} in:\n{csv}"))
}

/// The export with one row's text replaced (quoted as a spreadsheet does).
fn edit(csv: &str, file: &str, key_path: &str, text: &str) -> String {
    let (_, line) = row(csv, file, key_path);
    let cols: Vec<&str> = line.splitn(9, ',').collect();
    let quoted = format!("\"{}\"", text.replace('"', "\"\""));
    let new = format!("{},{quoted}", cols[..8].join(","));
    csv.replacen(line, &new, 1)
}

const FLOW: &str = "flows/legal_help.toml";
const LAWYER: &str = "config/lawyer_texts.toml";

fn unchanged(copy: &Copy) {
    for f in [FLOW, LAWYER] {
        assert_eq!(
            copy.read(f),
            std::fs::read_to_string(common::root().join(f)).unwrap(),
            "{f} was written"
        );
    }
}

#[test]
fn export_lists_every_text_with_its_limit_and_length() {
    let copy = Copy::new();
    let csv = copy.export();
    assert!(
        csv.starts_with("file,key_path,node,language,kind,limit,length,encoding,text\r\n"),
        "{csv}"
    );
    assert_eq!(
        row(&csv, FLOW, "nodes.city.text.ky").1,
        "flows/legal_help.toml,nodes.city.text.ky,city,ky,ussd,31,11,UCS-2,Кайсы шаар?"
    );
    // A text with a comma is quoted; SMS limits are two parts.
    assert!(
        csv.contains(
            "flows/legal_help.toml,messages.sms_help.ru,messages,ru,sms,102,48,UCS-2,\"Чтобы начать, отправьте одно из слов: {keywords}\"\r\n"
        ),
        "{csv}"
    );
    let (_, offer) = row(&csv, LAWYER, "ky.offer");
    assert!(offer.contains(",offer,ky,lawyer,"), "{offer}");
    // Every Kyrgyz and Ukrainian text of the flow is there.
    for lang in ["ky", "uk"] {
        let n = csv
            .lines()
            .filter(|l| l.starts_with(FLOW) && l.contains(&format!(",{lang},")))
            .count();
        assert!(n > 30, "{lang}: {n} rows");
    }
    // Every shipped text fits the limit its row states: a translator who
    // fixes a typo in one must not be refused for the length the text
    // already had (the Kyrgyz `welcome` was 158 of 135).
    for line in csv.lines().skip(1) {
        let cols: Vec<&str> = line.splitn(9, ',').collect();
        let (limit, length): (usize, usize) = (cols[5].parse().unwrap(), cols[6].parse().unwrap());
        assert!(length <= limit, "over its own limit: {line}");
    }
    // Re-importing the export unchanged changes nothing.
    let (code, out, err) = copy.import(&csv, &[]);
    assert_eq!(code, Some(0), "{out}\n{err}");
    assert!(out.contains("no text changed"), "{out}");
    unchanged(&copy);
}

#[test]
fn an_edited_kyrgyz_text_is_written_at_its_key_only_keeping_comments() {
    let copy = Copy::new();
    let csv = copy.export();
    let new = "Кайсы шаар, айтыңыз?";
    let edited = edit(&csv, FLOW, "nodes.city.text.ky", new);
    let (n, _) = row(&csv, FLOW, "nodes.city.text.ky");

    let (code, out, err) = copy.import(&edited, &["--dry-run"]);
    assert_eq!(code, Some(0), "{out}\n{err}");
    assert!(
        out.contains(&format!("row {n}: {FLOW} nodes.city.text.ky")),
        "{out}"
    );
    assert!(out.contains("--dry-run: nothing written"), "{out}");
    unchanged(&copy);

    let (code, out, err) = copy.import(&edited, &[]);
    assert_eq!(code, Some(0), "{out}\n{err}");
    assert!(
        out.contains("1 text(s) changed in flows/legal_help.toml"),
        "{out}"
    );
    let original = std::fs::read_to_string(common::root().join(FLOW)).unwrap();
    assert_eq!(
        copy.read(FLOW),
        original.replacen("ky = \"Кайсы шаар?\"", &format!("ky = \"{new}\""), 1),
        "only that string changed: comments and layout kept"
    );
    assert_eq!(
        copy.read(LAWYER),
        std::fs::read_to_string(common::root().join(LAWYER)).unwrap()
    );
    let (code, out, err) = copy.hotline(&["check"]);
    assert_eq!(code, Some(0), "{out}\n{err}");
    assert!(out.contains("no problems found"), "{out}");
    // And the new text is what the next export shows.
    assert!(
        copy.export()
            .contains(&format!(",ky,ussd,31,20,UCS-2,\"{new}\"\r\n"))
    );
}

#[test]
fn a_row_over_its_limit_is_rejected_by_row_number_and_nothing_is_written() {
    let copy = Copy::new();
    let csv = copy.export();
    let (n, line) = row(&csv, FLOW, "nodes.city.text.ky");
    assert!(line.contains(",31,11,UCS-2,"), "{line}");
    // 32 characters where 31 fit; and a fine edit elsewhere in the file.
    let long = "Кайсы шаарда жардам керек болду?";
    assert_eq!(long.chars().count(), 32);
    let edited = edit(&csv, FLOW, "nodes.city.text.ky", long);
    let edited = edit(&edited, FLOW, "nodes.city.text.uk", "Яке місто");
    let (code, out, err) = copy.import(&edited, &[]);
    assert_eq!(code, Some(1), "{out}\n{err}");
    assert!(
        err.contains(&format!(
            "error: row {n}: {FLOW} nodes.city.text.ky: 32 characters in UCS-2, over its limit of 31"
        )),
        "{err}"
    );
    assert!(err.contains("1 row(s) rejected: nothing written"), "{err}");
    unchanged(&copy);
}

#[test]
fn a_dropped_placeholder_or_an_unknown_key_is_rejected_and_nothing_is_written() {
    let copy = Copy::new();
    let csv = copy.export();
    let (n, line) = row(&csv, FLOW, "messages.confirm.ky");
    assert!(line.contains("{code}"), "{line}");
    let edited = edit(
        &csv,
        FLOW,
        "messages.confirm.ky",
        "Кайрылууңуз кабыл алынды. Жакында чалышат.",
    );
    let (code, out, err) = copy.import(&edited, &[]);
    assert_eq!(code, Some(1), "{out}\n{err}");
    assert!(
        err.contains(&format!(
            "error: row {n}: {FLOW} messages.confirm.ky: placeholders must stay as in the current text (missing {{code}})"
        )),
        "{err}"
    );
    unchanged(&copy);

    let (m, _) = row(&csv, LAWYER, "ky.offer");
    let offer = edit(
        &csv,
        LAWYER,
        "ky.offer",
        "{city}: {callback} {code} {minuets}",
    );
    let (code, _, err) = copy.import(&offer, &[]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains(&format!("error: row {m}: {LAWYER} ky.offer: placeholders")),
        "{err}"
    );
    assert!(err.contains("unknown here {minuets}"), "{err}");
    unchanged(&copy);

    let unknown = format!("{csv}{FLOW},nodes.nowhere.text.ky,x,ky,ussd,1,1,UCS-2,Жок\r\n");
    let rows = csv.lines().count() + 1;
    let (code, _, err) = copy.import(&unknown, &[]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains(&format!(
            "error: row {rows}: {FLOW} has no text at \"nodes.nowhere.text.ky\""
        )),
        "{err}"
    );
    unchanged(&copy);
}

#[test]
fn a_change_that_breaks_check_is_not_written() {
    // Each label fits on its own, but a screen is measured whole: the
    // import runs hotline check on the result before writing.
    let copy = Copy::new();
    let csv = copy.export();
    let (_, a) = row(&csv, FLOW, "nodes.city.options[0].label.ky");
    let (_, b) = row(&csv, FLOW, "nodes.city.options[3].label.ky");
    let room = |line: &str| -> usize {
        let cols: Vec<&str> = line.split(',').collect();
        cols[5].parse::<usize>().unwrap()
    };
    let fill = |n: usize| "ж".repeat(n);
    let edited = edit(&csv, FLOW, "nodes.city.options[0].label.ky", &fill(room(a)));
    let edited = edit(
        &edited,
        FLOW,
        "nodes.city.options[3].label.ky",
        &fill(room(b)),
    );
    let (code, out, err) = copy.import(&edited, &[]);
    assert_eq!(code, Some(1), "{out}\n{err}");
    assert!(err.contains("over the USSD limit of 80"), "{err}");
    assert!(err.contains("fail hotline check"), "{err}");
    unchanged(&copy);
}

#[test]
fn a_malformed_csv_is_refused_with_exit_64() {
    let copy = Copy::new();
    let (code, _, err) = copy.import("file,key_path,text\r\n\"unclosed,x,y\r\n", &[]);
    assert_eq!(code, Some(64), "{err}");
    assert!(
        err.contains("line 2: a quoted field is never closed"),
        "{err}"
    );
    // Not an export at all: no header naming the columns, or nothing.
    let (code, _, err) = copy.import("a,b\r\n", &[]);
    assert_eq!(code, Some(64), "{err}");
    assert!(
        err.contains("row 1: the header needs the columns file, key_path and text"),
        "{err}"
    );
    let (code, _, err) = copy.import("", &[]);
    assert_eq!(code, Some(64), "{err}");
    assert!(err.contains("the CSV is empty"), "{err}");
    let (code, _, err) = copy.hotline(&["texts", "export", "--format", "xlsx"]);
    assert_eq!(code, Some(64), "{err}");
    unchanged(&copy);
}

/// The outcome labels a lawyer is told when she closes a case are exported
/// and measured inside their language's `closed` message; an edited Kyrgyz
/// label is written into its inline table; `help` is measured with the
/// language's real outcome codes.
#[test]
fn outcome_labels_are_texts_for_translators_too() {
    let copy = Copy::new();
    let csv = copy.export();
    let (_, line) = row(&csv, LAWYER, "ky.outcomes.released.label");
    assert!(line.contains(",outcomes.released,ky,lawyer,"), "{line}");
    let (_, help) = row(&csv, LAWYER, "ru.help");
    let limit: usize = help.split(',').nth(5).unwrap().parse().unwrap();
    let text = std::fs::read_to_string(common::root().join(LAWYER)).unwrap();
    let texts = hotline::dispatch::texts::LawyerTexts::parse(&text, LAWYER).unwrap();
    let real = texts
        .for_langs(&["ru".to_owned()])
        .help_text()
        .chars()
        .count();
    let own = texts.for_langs(&["ru".to_owned()]).help.chars().count();
    assert_eq!(
        limit,
        134 - (real - own),
        "help's limit leaves room for the real codes"
    );
    let new = "айыпсыз бошотулду";
    let edited = edit(&csv, LAWYER, "ky.outcomes.released.label", new);
    let (code, out, err) = copy.import(&edited, &[]);
    assert_eq!(code, Some(0), "{out}\n{err}");
    assert!(copy.read(LAWYER).contains(&format!("label = \"{new}\"")));
    let (code, out, err) = copy.hotline(&["check"]);
    assert_eq!(code, Some(0), "{out}\n{err}");
}
