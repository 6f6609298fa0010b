//! The `file DBFILE [ZONES...] { reload DURATION; reload_by_mtime; fallthrough [ZONES...] }`
//! directive and the `root PATH` it reads relative paths against, as CoreDNS's setup reads
//! them: ZONES default to the block's (a CIDR stands for its reverse zones), `reload` to one
//! minute (0: never), and DBFILE, when relative, is under `root` if the block has one and
//! otherwise relative to the working directory (CoreDNS opens it as given). The file is read
//! here, for every zone: one that does not parse stops startup (or a Corefile reload) with its
//! own file and line. One that cannot be opened does too when `reload` is 0; otherwise, as
//! CoreDNS, the server starts, logs it, answers SERVFAIL for the zone and reads the file once
//! it appears.
//!
//! Where this differs from CoreDNS: each `file` directive of a block keeps its own `reload`
//! (CoreDNS carries one directive's over to the next ones of the block); a zone given twice in
//! a block is refused (CoreDNS serves the last); `upstream`, which CoreDNS accepts and ignores,
//! is accepted and ignored likewise. DNSSEC is not served: a zone file with DNSSEC records is
//! refused with their line.

use std::path::Path;
use std::sync::Arc;

use super::*;
use crate::chain::files::{log_warnings, read_zone};
use crate::chain::plugins::file::{FilePlan, ZoneFile};

/// CoreDNS's default `reload` interval for zone files.
const RELOAD: Duration = Duration::from_secs(60);

/// The `root PATH` directive.
pub(super) fn root(d: &Directive) -> Result<PathBuf, CorefileError> {
    no_block(d)?;
    match d.args.as_slice() {
        [path] => Ok(PathBuf::from(&path.text)),
        _ => Err(CorefileError::at(
            &d.name,
            "root: exactly one PATH is needed",
        )),
    }
}

/// One `file` directive of a block with zones `block_zones` and root `root`, added to `plan`.
pub(super) fn file(
    d: &Directive,
    block_zones: &[String],
    root: Option<&Path>,
    plan: &mut FilePlan,
) -> Result<(), CorefileError> {
    let Some(db) = d.args.first() else {
        return Err(CorefileError::at(&d.name, "file: DBFILE is needed"));
    };
    let zones = zones_or_block(&d.args[1..], block_zones)?;
    let mut path = PathBuf::from(&db.text);
    if let (false, Some(root)) = (path.is_absolute(), root) {
        path = root.join(path);
    }
    let (mut reload, mut reload_by_mtime) = (RELOAD, false);
    for option in &d.block {
        match option.name.text.as_str() {
            "reload" => reload = duration(one_arg(d, option)?)?,
            "reload_by_mtime" => {
                no_args(option)?;
                no_block(option)?;
                reload_by_mtime = true;
            }
            "fallthrough" => plan.fallthrough = fallthrough(option)?,
            // CoreDNS reads it and does nothing with it ("remove soon").
            "upstream" => no_block(option)?,
            _ => return Err(unknown_option(d, option)),
        }
    }
    let corefile_at = format!("{}:{}", d.name.at.file.display(), d.name.at.line);
    for zone in zones {
        let origin = zone_name(&d.name, &zone)?;
        if plan.zones.iter().any(|z| z.origin == origin) {
            return Err(CorefileError::at(
                &d.name,
                format!("file: the zone {zone} is given twice in this server block"),
            ));
        }
        let mut config = ZoneFile {
            origin,
            path: path.clone(),
            reload,
            reload_by_mtime,
            zone: None,
            files: Vec::new(),
        };
        if let Err(error) = std::fs::File::open(&path) {
            if reload.is_zero() {
                return Err(CorefileError::at(
                    db,
                    format!("file {}: {error}", path.display()),
                ));
            }
            tracing::warn!(zone = %zone, file = %path.display(), %error, ?reload, "file: cannot open the zone file; SERVFAIL for the zone until it can be read");
            plan.zones.push(config);
            continue;
        }
        let loaded = read_zone(&config).map_err(|e| CorefileError {
            file: e.file,
            line: e.line,
            message: format!("file {zone} (at {corefile_at}): {}", e.message),
        })?;
        log_warnings(&zone, &loaded);
        config.files = loaded.files;
        config.zone = Some(Arc::new(loaded.zone));
        plan.zones.push(config);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::tests::{plan_text, refused};
    use super::*;
    use clusterdns_testkit::temp::TempDir;

    const DB: &str = "$ORIGIN example.org.\n\
        @ 3600 IN SOA sns.dns.icann.org. noc.dns.icann.org. 2017042745 7200 3600 1209600 3600\n\
        \t3600 IN NS a.iana-servers.net.\n\
        www IN A 127.0.0.1\n";

    fn file_of(text: &str) -> FilePlan {
        let plan = plan_text(text).unwrap_or_else(|e| panic!("{text}: {e}"));
        plan.ports[0].blocks[0].file.clone().expect("file planned")
    }

    #[test]
    fn reads_the_readme_examples() {
        let dir = TempDir::new("file-directive");
        let db = dir.write("db.example.org", DB);
        let db = db.display();
        // `example.org { file db.example.org }`: the block's zone, a minute's reload.
        let plan = file_of(&format!("example.org:1053 {{\n  file {db}\n}}\n"));
        assert_eq!(plan.zones.len(), 1);
        assert_eq!(plan.zones[0].origin.to_dotted(), "example.org.");
        assert_eq!(plan.zones[0].reload, Duration::from_secs(60));
        assert_eq!(
            plan.zones[0].zone.as_ref().map(|z| z.serial()),
            Some(2017042745)
        );
        // `. { file db.example.org example.org example.net }`: one file, two zones (the file
        // names its $ORIGIN, so example.net holds the SOA of neither and is refused).
        let text = format!(".:1053 {{\n  file {db} example.org example.net\n}}\n");
        let error = plan_text(&text).expect_err("example.net has no SOA");
        assert!(
            error
                .to_string()
                .contains("no SOA record for the zone example.net."),
            "{error}"
        );
        let plain = dir.write("db.plain", "@ 3600 IN SOA ns hostmaster 1 2 3 4 5\n");
        let text = format!(
            ".:1053 {{\n  file {} example.org example.net\n}}\n",
            plain.display()
        );
        let origins: Vec<String> = (file_of(&text).zones.iter())
            .map(|z| z.origin.to_dotted())
            .collect();
        assert_eq!(origins, ["example.org.", "example.net."]);
        // `. { file db.example.org example.org }` with the options.
        let text = format!(
            ".:1053 {{\n  file {db} example.org {{\n    reload 30s\n    fallthrough\n  }}\n}}\n"
        );
        let plan = file_of(&text);
        assert_eq!(plan.zones[0].reload, Duration::from_secs(30));
        assert_eq!(plan.fallthrough, Fallthrough::all());
        // A CIDR is its reverse zones.
        let text = format!(".:1053 {{\n  file {} 10.0.0.0/8\n}}\n", plain.display());
        assert_eq!(
            file_of(&text).zones[0].origin.to_dotted(),
            "10.in-addr.arpa."
        );
    }

    #[test]
    fn resolves_a_relative_dbfile_under_root() {
        let dir = TempDir::new("file-root");
        dir.write("db.example.org", DB);
        let text = format!(
            "example.org:1053 {{\n  file db.example.org\n  root {}\n}}\n",
            dir.path().display()
        );
        let plan = file_of(&text);
        assert_eq!(plan.zones[0].path, dir.path().join("db.example.org"));
        assert!(plan.zones[0].zone.is_some());
    }

    #[test]
    fn starts_without_the_file_only_when_it_will_reload() {
        let text = "example.org:1053 {\n  file /nonexistent/db.example.org\n}\n";
        let plan = file_of(text);
        assert!(plan.zones[0].zone.is_none());
        refused(
            "file /nonexistent/db.example.org example.org {\n reload 0\n }",
            "/nonexistent/db.example.org",
        );
    }

    #[test]
    fn refuses_a_broken_zone_file_naming_its_line() {
        let dir = TempDir::new("file-broken");
        let db = dir.write("db", "@ 3600 IN SOA ns h 1 2 3 4 5\n\nwww IN A 300.0.0.1\n");
        let text = format!("example.org:1053 {{\n  file {}\n}}\n", db.display());
        let error = plan_text(&text).expect_err("broken");
        assert_eq!(error.file, db);
        assert_eq!(error.line, 3);
        assert!(
            error.to_string().contains("at /etc/coredns/Corefile:2"),
            "{error}"
        );
        let db = dir.write(
            "signed",
            "@ 3600 IN SOA ns h 1 2 3 4 5\n@ RRSIG SOA 8 2 3600 1 2 3 example.org. abc\n",
        );
        let text = format!("example.org:1053 {{\n  file {}\n}}\n", db.display());
        let error = plan_text(&text).expect_err("signed");
        assert!(
            error.to_string().contains("DNSSEC is not supported"),
            "{error}"
        );
    }

    #[test]
    fn refuses_what_it_does_not_do() {
        refused("file", "DBFILE is needed");
        refused(
            "file /tmp/db example.org {\n transfer to *\n }",
            "\"transfer\"",
        );
        refused(
            "file /tmp/db example.org {\n reload\n }",
            "exactly one value",
        );
        refused("root", "exactly one PATH");
        refused("root /a /b", "exactly one PATH");
    }
}
