//! Limits on GraphQL documents, checked before the schema validates or runs anything, so no
//! document can exhaust the stack, the CPU or the memory. Each error names the limit and its
//! value.
//!
//! The text is scanned before it is parsed (the parser recurses once per bracket), and the
//! parsed document is measured with each fragment's cost computed once, so a document of
//! fragments that spread each other costs its size to measure, not its expansion.

use std::collections::HashMap;

use async_graphql::parser::types::{ExecutableDocument, OperationType, Selection, SelectionSet};
use async_graphql::{Pos, Positioned, Request, ServerError};

/// Longest query text, in bytes.
pub const MAX_QUERY_BYTES: usize = 32 * 1024;
/// Deepest nesting of brackets (`{`, `[`, `(`) in the text: selections, lists and objects.
pub const MAX_NESTING: usize = 32;
/// Deepest nesting of fields, fragments expanded. The standard introspection query is 13
/// deep.
pub const MAX_DEPTH: usize = 16;
/// Most fields in a document once its fragments are expanded. The standard introspection
/// query selects about 250.
pub const MAX_FIELDS: usize = 2_000;
/// Most aliased fields in a document, fragments expanded.
pub const MAX_ALIASES: usize = 100;
/// Most root fields in one operation.
pub const MAX_ROOT_FIELDS: usize = 50;
/// Most mutation fields in one operation: each may run a check or write a row.
pub const MAX_MUTATIONS: usize = 10;

/// Checks a request's query text and document against the limits, and leaves the parsed
/// document on the request so it is parsed once. The errors are the client's to fix.
pub fn guard(request: &mut Request) -> Result<(), Vec<ServerError>> {
    check_text(&request.query).map_err(|e| vec![e])?;
    let document =
        async_graphql::parser::parse_query(&request.query).map_err(|e| vec![syntax_error(e)])?;
    check_document(&document).map_err(|e| vec![e])?;
    request.set_parsed_query(document);
    Ok(())
}

/// The checks on the text alone: its size and its bracket nesting.
pub fn check_text(query: &str) -> Result<(), ServerError> {
    if query.len() > MAX_QUERY_BYTES {
        return Err(limit_error(format!(
            "query is {} bytes; the limit is {MAX_QUERY_BYTES} bytes",
            query.len()
        )));
    }
    let mut depth = 0usize;
    let mut bytes = query.bytes().enumerate().peekable();
    let text = query.as_bytes();
    while let Some((i, b)) = bytes.next() {
        match b {
            b'#' => {
                for (_, c) in bytes.by_ref() {
                    if c == b'\n' || c == b'\r' {
                        break;
                    }
                }
            }
            b'"' if text[i..].starts_with(b"\"\"\"") => {
                bytes.next();
                bytes.next();
                // A block string ends at the next `"""` not escaped as `\"""`.
                while let Some((j, c)) = bytes.next() {
                    if c == b'\\' && text[j..].starts_with(b"\\\"\"\"") {
                        bytes.nth(2);
                    } else if c == b'"' && text[j..].starts_with(b"\"\"\"") {
                        bytes.nth(1);
                        break;
                    }
                }
            }
            b'"' => {
                while let Some((_, c)) = bytes.next() {
                    match c {
                        b'\\' => {
                            bytes.next();
                        }
                        b'"' | b'\n' | b'\r' => break,
                        _ => {}
                    }
                }
            }
            b'{' | b'[' | b'(' => {
                depth += 1;
                if depth > MAX_NESTING {
                    return Err(limit_error(format!(
                        "query nests brackets more than {MAX_NESTING} deep; the limit is {MAX_NESTING}"
                    )));
                }
            }
            b'}' | b']' | b')' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

/// What a selection set costs once its fragments are expanded.
#[derive(Debug, Clone, Copy, Default)]
struct Cost {
    /// Fields, at every level.
    fields: usize,
    /// Aliased fields, at every level.
    aliases: usize,
    /// Fields at this level (fragments at this level included).
    top: usize,
    /// Deepest field nesting below and including this level.
    depth: usize,
}

impl Cost {
    fn add(&mut self, other: Cost) {
        self.fields = self.fields.saturating_add(other.fields);
        self.aliases = self.aliases.saturating_add(other.aliases);
        self.top = self.top.saturating_add(other.top);
        self.depth = self.depth.max(other.depth);
    }
}

/// The checks on a parsed document: fields, aliases and depth with fragments expanded, root
/// fields and mutations per operation.
pub fn check_document(document: &ExecutableDocument) -> Result<(), ServerError> {
    let mut measure = Measure {
        document,
        costs: HashMap::new(),
        in_progress: Vec::new(),
    };
    let mut total = Cost::default();
    for (name, operation) in document.operations.iter() {
        let cost = measure.selection_set(&operation.node.selection_set)?;
        let named = match name {
            Some(name) => format!("operation `{name}`"),
            None => "the operation".to_owned(),
        };
        if operation.node.ty == OperationType::Mutation && cost.top > MAX_MUTATIONS {
            return Err(limit_error_at(
                format!(
                    "{named} has {} mutation fields; the limit is {MAX_MUTATIONS} per request",
                    cost.top
                ),
                operation.pos,
            ));
        }
        if cost.top > MAX_ROOT_FIELDS {
            return Err(limit_error_at(
                format!(
                    "{named} has {} root fields; the limit is {MAX_ROOT_FIELDS}",
                    cost.top
                ),
                operation.pos,
            ));
        }
        total.add(cost);
        check_totals(&total)?;
    }
    Ok(())
}

fn check_totals(cost: &Cost) -> Result<(), ServerError> {
    if cost.fields > MAX_FIELDS {
        return Err(limit_error(format!(
            "query selects more than {MAX_FIELDS} fields once fragments are expanded; the limit is {MAX_FIELDS}"
        )));
    }
    if cost.aliases > MAX_ALIASES {
        return Err(limit_error(format!(
            "query has more than {MAX_ALIASES} aliased fields; the limit is {MAX_ALIASES}"
        )));
    }
    if cost.depth > MAX_DEPTH {
        return Err(limit_error(format!(
            "query nests fields {} deep; the limit is {MAX_DEPTH}",
            cost.depth
        )));
    }
    Ok(())
}

struct Measure<'a> {
    document: &'a ExecutableDocument,
    /// Each fragment's cost, computed once.
    costs: HashMap<&'a str, Cost>,
    /// Fragments being measured: one that reappears here spreads itself.
    in_progress: Vec<&'a str>,
}

impl<'a> Measure<'a> {
    fn selection_set(&mut self, set: &'a Positioned<SelectionSet>) -> Result<Cost, ServerError> {
        let mut cost = Cost::default();
        for selection in &set.node.items {
            match &selection.node {
                Selection::Field(field) => {
                    let inner = self.selection_set(&field.node.selection_set)?;
                    cost.add(Cost {
                        fields: inner.fields.saturating_add(1),
                        aliases: inner
                            .aliases
                            .saturating_add(usize::from(field.node.alias.is_some())),
                        top: 1,
                        depth: inner.depth + 1,
                    });
                }
                Selection::InlineFragment(fragment) => {
                    cost.add(self.selection_set(&fragment.node.selection_set)?);
                }
                Selection::FragmentSpread(spread) => {
                    let name = spread.node.fragment_name.node.as_str();
                    cost.add(self.fragment(name, spread.pos)?);
                }
            }
            // Stop as soon as the expansion is over a limit, before it grows further.
            check_totals(&cost)?;
        }
        Ok(cost)
    }

    fn fragment(&mut self, name: &'a str, at: Pos) -> Result<Cost, ServerError> {
        if let Some(cost) = self.costs.get(name) {
            return Ok(*cost);
        }
        if self.in_progress.contains(&name) {
            return Err(limit_error_at(
                format!("fragment `{name}` spreads itself, directly or through other fragments"),
                at,
            ));
        }
        // An unknown fragment costs nothing here; validation reports it.
        let Some(fragment) = self.document.fragments.get(name) else {
            return Ok(Cost::default());
        };
        self.in_progress.push(name);
        let cost = self.selection_set(&fragment.node.selection_set);
        self.in_progress.pop();
        let cost = cost?;
        self.costs.insert(name, cost);
        Ok(cost)
    }
}

/// A parse error as one line: where, and what was expected.
pub fn syntax_error(err: async_graphql::parser::Error) -> ServerError {
    let positions: Vec<Pos> = err.positions().collect();
    let message = match &err {
        async_graphql::parser::Error::Syntax { message, start, .. } => {
            let expected = message
                .lines()
                .find_map(|line| line.trim_start().strip_prefix("= "))
                .unwrap_or("unexpected input");
            format!(
                "syntax error at line {}, column {}: {expected}",
                start.line, start.column
            )
        }
        other => other.to_string().replace('\n', " "),
    };
    let mut error = ServerError::new(message, positions.first().copied());
    error.locations = positions;
    with_code(error, "BAD_USER_INPUT")
}

fn limit_error(message: String) -> ServerError {
    with_code(ServerError::new(message, None), "BAD_USER_INPUT")
}

fn limit_error_at(message: String, at: Pos) -> ServerError {
    with_code(ServerError::new(message, Some(at)), "BAD_USER_INPUT")
}

/// `error` with `extensions.code` set to `code`.
pub(crate) fn with_code(mut error: ServerError, code: &str) -> ServerError {
    error
        .extensions
        .get_or_insert_with(Default::default)
        .set("code", code);
    error
}

/// Gives an error that async-graphql raised itself (parse, validation, complexity: the
/// client's mistake) the code `BAD_USER_INPUT`, and its complexity message the limit's value,
/// over every transport.
pub(crate) fn explain(error: &mut ServerError) {
    if error.message == "Query is too complex." {
        error.message = format!(
            "query is too complex; the limit is {} (each field counts 1, and a list field counts its fields `first` times)",
            super::MAX_COMPLEXITY
        );
    }
    let extensions = error.extensions.get_or_insert_with(Default::default);
    if extensions.get("code").is_none() {
        extensions.set("code", "BAD_USER_INPUT");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn document(query: &str) -> ExecutableDocument {
        async_graphql::parser::parse_query(query).expect("the query parses")
    }

    #[test]
    fn nesting_is_counted_outside_strings_and_comments_only() {
        assert!(check_text("{ a(x: \"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\") }").is_ok());
        assert!(check_text("{ a # [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\n }").is_ok());
        assert!(
            check_text("{ a(x: \"\"\"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\\\"\"\" \"\"\") }")
                .is_ok()
        );
        let deep = format!("{{ a(x: {}1{}) }}", "[".repeat(40), "]".repeat(40));
        let err = check_text(&deep).unwrap_err();
        assert!(err.message.contains("limit is 32"), "{}", err.message);
        let deep_object = format!("{{ a(x: {}) }}", "{a:".repeat(2000) + &"}".repeat(2000));
        assert!(check_text(&deep_object).is_err());
    }

    #[test]
    fn fragments_that_spread_each_other_are_measured_once_each() {
        // 2^40 expansions if measured naively.
        let mut query = String::from("query { ...F0 }\n");
        for i in 0..40 {
            query.push_str(&format!(
                "fragment F{i} on Query {{ ...F{} ...F{} }}\n",
                i + 1,
                i + 1
            ));
        }
        query.push_str("fragment F40 on Query { monitors { nodes { id } } }\n");
        let err = check_document(&document(&query)).unwrap_err();
        assert!(err.message.contains("fields"), "{}", err.message);
    }

    #[test]
    fn a_fragment_cycle_is_refused_by_name() {
        let err = check_document(&document(
            "{ ...A } fragment A on Query { ...B } fragment B on Query { ...A }",
        ))
        .unwrap_err();
        assert!(err.message.contains("spreads itself"), "{}", err.message);
    }

    #[test]
    fn aliases_root_fields_and_mutations_are_capped() {
        let aliases: String = (0..101).map(|i| format!("a{i}: __typename ")).collect();
        let err = check_document(&document(&format!("{{ x {{ {aliases} }} }}"))).unwrap_err();
        assert!(err.message.contains("aliased"), "{}", err.message);
        let roots: String = (0..51).map(|i| format!("f{i} ")).collect();
        let err = check_document(&document(&format!("{{ {roots} }}"))).unwrap_err();
        assert!(err.message.contains("51 root fields"), "{}", err.message);
        let runs: String = (0..11)
            .map(|i| format!("r{i}: runCheck(id: 1) {{ id }} "))
            .collect();
        let err = check_document(&document(&format!("mutation {{ {runs} }}"))).unwrap_err();
        assert!(
            err.message.contains("11 mutation fields"),
            "{}",
            err.message
        );
    }

    #[test]
    fn depth_counts_fields_through_fragments() {
        let mut query = String::from("{ ...D0 }");
        for i in 0..20 {
            query.push_str(&format!(" fragment D{i} on T {{ f {{ ...D{} }} }}", i + 1));
        }
        query.push_str(" fragment D20 on T { leaf }");
        let err = check_document(&document(&query)).unwrap_err();
        assert!(err.message.contains("limit is 16"), "{}", err.message);
    }

    #[test]
    fn parse_errors_are_one_line() {
        let err = syntax_error(async_graphql::parser::parse_query("{ a(").unwrap_err());
        assert!(!err.message.contains('\n'), "{}", err.message);
        assert!(
            err.message.starts_with("syntax error at line 1, column 5"),
            "{}",
            err.message
        );
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    /// Pieces of GraphQL text, brackets, strings and comments included, so the generated
    /// documents nest, open strings and comments, and mix them in every order.
    fn piece() -> impl Strategy<Value = &'static str> {
        prop::sample::select(vec![
            "{",
            "}",
            "[",
            "]",
            "(",
            ")",
            "a",
            "b: ",
            "...F",
            "fragment F on Query ",
            "query ",
            "mutation ",
            "\"",
            "\"\"\"",
            "\\",
            "#",
            "\n",
            " ",
            ",",
            "$v",
            "@d",
            "1",
            "1.5e3",
            "true",
            "null",
            "on ",
            "__typename ",
            "monitors(first: 5) ",
            "é",
            "\u{0}",
        ])
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2_000))]

        /// Whatever the text, the guard answers (it never overflows the stack or panics), and
        /// a document it lets through is within every limit.
        #[test]
        fn the_guard_answers_every_text(pieces in prop::collection::vec(piece(), 0..400), repeat in 1usize..200) {
            let mut text: String = pieces.concat();
            // Long runs of one bracket, as the stack-overflow attacks send.
            let opener = pieces.first().copied().unwrap_or("{");
            text.push_str(&opener.repeat(repeat));
            let mut request = Request::new(text);
            if guard(&mut request).is_ok() {
                let document = request.parsed_query().expect("a guarded request is parsed");
                prop_assert!(check_document(document).is_ok());
            }
        }

        /// Deeply nested values are refused before the parser sees them, at any depth.
        #[test]
        fn nested_values_are_refused_at_any_depth(depth in 33usize..5_000, list in any::<bool>()) {
            let (open, close) = if list { ("[", "]") } else { ("{a:", "}") };
            let query = format!("{{ f(x: {}1{}) }}", open.repeat(depth), close.repeat(depth));
            let err = guard(&mut Request::new(query)).unwrap_err();
            prop_assert!(err[0].message.contains("the limit is 32"));
        }
    }
}
