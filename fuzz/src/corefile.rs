//! Target `corefile`: the Corefile parser (`clusterdns::config::corefile::parse`) and the directive
//! interpreter that turns the parsed file into a plan (`clusterdns::config::corefile::plan`). The input
//! is the text of a Corefile at `<sandbox>/Corefile`, where the sandbox is a scratch directory
//! holding a few files to `import` (`a.conf`, `b.server`, `custom/x.override`) and to read as
//! `hosts` and `forward` files (`hosts`, `resolv.conf`); every `{$VAR}` and `{%VAR%}` is `x`.
//!
//! The parser and the plan read files: imports (relative to the Corefile, or absolute), and the
//! paths `hosts` and `forward` name (relative to the working directory, which the fuzz binary
//! sets to the sandbox). So that a fuzz input cannot make them read a device, a FIFO or a large
//! file, inputs that could name one are skipped ([`reads_only_the_sandbox`]). Checked: parsing
//! is deterministic; an error in the Corefile itself names a line of it; a plan has a port; and
//! a plan needs no restart to become itself.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use clusterdns::config::corefile::{parse, plan};

/// Absolute paths inputs may name (all regular files, or missing).
const ALLOWED_ABSOLUTE: [&str; 3] = ["/etc/resolv.conf", "/etc/hosts", "/etc/coredns/"];

/// The sandbox directory, made once per process with the files imports and plugins may read.
pub fn sandbox() -> &'static Path {
    static SANDBOX: OnceLock<PathBuf> = OnceLock::new();
    SANDBOX.get_or_init(|| {
        let dir =
            std::env::temp_dir().join(format!("clusterdns-fuzz-corefile-{}", std::process::id()));
        let files: [(&str, &str); 5] = [
            ("a.conf", "log\nerrors\n"),
            (
                "b.server",
                "example.org:53 {\n    forward . 192.0.2.1:53\n    cache 30\n}\n",
            ),
            (
                "custom/x.override",
                "rewrite name exact old.example new.example\n",
            ),
            (
                "hosts",
                "10.0.0.1 host.example alias.example\nfd00::1 six.example\n# comment\n",
            ),
            ("resolv.conf", "search example.org\nnameserver 192.0.2.53\n"),
        ];
        for (name, text) in files {
            let path = dir.join(name);
            let written = path
                .parent()
                .map_or(Ok(()), std::fs::create_dir_all)
                .and_then(|()| std::fs::write(&path, text));
            if let Err(error) = written {
                panic!("cannot write {}: {error}", path.display());
            }
        }
        dir
    })
}

/// Whether every file `text` can make the parser or the plan read lies in the sandbox (or is
/// one of [`ALLOWED_ABSOLUTE`]): no `..`, and no word that starts with `/` except the allowed
/// paths. Conservative: `\r` (dropped inside words) and `\` (escapes) are removed first, and
/// `"` and `#` count as word boundaries; `{$VAR}` only ever becomes `x`, which cannot make a
/// `/` start a word.
pub fn reads_only_the_sandbox(text: &str) -> bool {
    let text: String = text.chars().filter(|&c| c != '\r' && c != '\\').collect();
    if text.contains("..") {
        return false;
    }
    let mut previous = None::<char>;
    for (at, c) in text.char_indices() {
        let starts_word = previous.is_none_or(|p| p.is_whitespace() || p == '"' || p == '#');
        if c == '/'
            && starts_word
            && !ALLOWED_ABSOLUTE
                .iter()
                .any(|allowed| text[at..].starts_with(allowed))
        {
            return false;
        }
        previous = Some(c);
    }
    true
}

/// Parses `data` as a Corefile and plans it.
pub fn run(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if !reads_only_the_sandbox(&text) {
        return;
    }
    let path = sandbox().join("Corefile");
    let env = |_: &str| Some("x".to_owned());
    let parsed = parse(&path, &text, &env);
    let again = parse(&path, &text, &env);
    let corefile = match (parsed, again) {
        (Ok(corefile), Ok(again)) => {
            assert_eq!(corefile, again, "parsing is not deterministic");
            corefile
        }
        (Err(error), Err(again)) => {
            assert_eq!(error.to_string(), again.to_string(), "errors differ");
            if error.file == path {
                let lines = text.matches('\n').count() + 1;
                assert!(
                    error.line as usize <= lines,
                    "error on line {} of a {lines}-line Corefile: {error}",
                    error.line
                );
            }
            return;
        }
        _ => panic!("parsing is not deterministic"),
    };
    assert_eq!(
        corefile.files.first(),
        Some(&path),
        "the Corefile is its first file"
    );
    match plan(&corefile) {
        Ok(planned) => {
            assert!(!planned.ports.is_empty(), "a plan without a port");
            for port in &planned.ports {
                assert!(!port.blocks.is_empty() && !port.listen.is_empty());
            }
            if let Some(why) = planned.restart_needed(&planned) {
                panic!("a plan needs a restart to become itself: {why}");
            }
            match plan(&corefile) {
                Ok(replanned) => {
                    assert_eq!(replanned.restart_needed(&planned), None);
                }
                Err(error) => panic!("planning is not deterministic: {error}"),
            }
        }
        Err(error) => {
            assert!(!error.message.is_empty());
        }
    }
}
