//! The `import` line: pasting a snippet or the files a pattern names into the token
//! stream, with the depth and size limits and the cycle check.

use super::*;

impl Parser<'_> {
    /// Replaces the `import X` line next in the stream with snippet X or the files X names.
    pub(super) fn import(&mut self) -> Result<(), CorefileError> {
        let Some(keyword) = self.next_raw() else {
            return Ok(());
        };
        let ancestry = self
            .sources
            .last()
            .map(|source| source.ancestry.clone())
            .unwrap_or_default();
        let has_argument =
            matches!(self.peek_raw(), Some((next, false)) if next.kind == Kind::Word);
        let Some(argument) = has_argument.then(|| self.next_raw()).flatten() else {
            return Err(CorefileError::at(
                &keyword.token,
                "'import' needs a file, a glob pattern or a snippet name",
            ));
        };
        let argument = argument.token;
        if let Some((extra, false)) = self.peek_raw() {
            return Err(CorefileError::at(
                &extra.token,
                format!(
                    "unexpected {:?}: 'import' takes one argument",
                    extra.token.text
                ),
            ));
        }
        if argument.text.is_empty() {
            return Err(CorefileError::at(
                &argument,
                "'import' needs a non-empty file path",
            ));
        }
        if ancestry.len() > MAX_IMPORT_DEPTH {
            return Err(CorefileError::at(
                &argument,
                format!("imports nested more than {MAX_IMPORT_DEPTH} deep"),
            ));
        }
        if let Some(snippet) = self.snippets.get(&argument.text) {
            let origin = Origin::Snippet(argument.text.clone());
            if ancestry.contains(&origin) {
                return Err(CorefileError::at(
                    &argument,
                    format!(
                        "snippet {:?} imports itself: {}",
                        argument.text,
                        cycle(&ancestry, &origin)
                    ),
                ));
            }
            let body = snippet.body.clone();
            let mut ancestry = ancestry;
            ancestry.push(origin);
            return self.splice(&argument, body, ancestry);
        }
        let files = self.import_files(&argument, &ancestry)?;
        for (lexemes, ancestry) in files.into_iter().rev() {
            self.splice(&argument, lexemes, ancestry)?;
        }
        Ok(())
    }

    /// Pastes what `import` (its argument `argument`) brought in, within the budget.
    pub(super) fn splice(
        &mut self,
        argument: &Token,
        lexemes: Vec<Lexeme>,
        ancestry: Vec<Origin>,
    ) -> Result<(), CorefileError> {
        self.spliced = self.spliced.saturating_add(lexemes.len().max(1));
        if self.spliced > MAX_SPLICED {
            return Err(CorefileError::at(
                argument,
                format!("imports paste in more than {MAX_SPLICED} words"),
            ));
        }
        self.push(lexemes, ancestry);
        Ok(())
    }

    /// The tokens of each file `argument` names, in order, with their ancestry.
    pub(super) fn import_files(
        &mut self,
        argument: &Token,
        ancestry: &[Origin],
    ) -> Result<Vec<Imported>, CorefileError> {
        let base = argument.at.file.parent().unwrap_or(Path::new(""));
        let pattern = base.join(&argument.text);
        let shown = pattern.to_string_lossy();
        if shown.matches('*').count() > 1
            || shown.matches('?').count() > 1
            || (shown.contains('[') && shown.contains(']'))
        {
            return Err(CorefileError::at(
                argument,
                format!(
                    "import pattern {shown:?} may hold one '*' and one '?' at most and no '[...]'"
                ),
            ));
        }
        let matches = glob(&pattern).map_err(|problem| {
            CorefileError::at(argument, format!("import pattern {shown:?}: {problem}"))
        })?;
        if matches.is_empty() && !shown.contains(['*', '?', '[', ']']) {
            return Err(CorefileError::at(
                argument,
                format!("cannot import {:?}: {shown} does not exist", argument.text),
            ));
        }
        let mut imported = Vec::with_capacity(matches.len());
        for path in matches {
            let origin = Origin::File(identity(&path));
            if ancestry.contains(&origin) {
                return Err(CorefileError::at(
                    argument,
                    format!("import cycle: {}", cycle(ancestry, &origin)),
                ));
            }
            if path.is_dir() {
                return Err(CorefileError::at(
                    argument,
                    format!("cannot import {}: it is a directory", path.display()),
                ));
            }
            let text = read_text(&path).map_err(|(line, problem)| {
                let place = if line == 0 {
                    String::new()
                } else {
                    format!(" (line {line})")
                };
                CorefileError::at(
                    argument,
                    format!("cannot import {}{place}: {problem}", path.display()),
                )
            })?;
            let lexemes = lex(&Arc::from(path.as_path()), &text, self.env)?;
            if !self.files.contains(&path) {
                self.files.push(path);
            }
            let mut chain = ancestry.to_vec();
            chain.push(origin);
            imported.push((lexemes, chain));
        }
        Ok(imported)
    }
}
