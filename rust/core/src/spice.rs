//! SPICE netlist parser: text → [`SpiceNetlist`].
//!
//! Only the subset of SPICE needed for DC operating points of nonlinear
//! resistive networks is accepted: resistors, diodes (with `.model D` cards),
//! independent voltage/current sources and the four linear controlled sources
//! (E, F, G, H). Anything that would change the DC solution but cannot be
//! represented is rejected with a [`SpiceParseError`] naming the physical line
//! and its text, rather than silently ignored.
//!
//! Conventions follow SPICE3/ngspice:
//!
//! * The first line is always the title, whatever it looks like.
//! * `*` at the start of a line makes a comment line; `;` anywhere, and `$` or
//!   `//` at the start of a line or after whitespace, start an inline comment.
//! * A line starting with `+` continues the previous logical line (comment and
//!   blank lines in between are allowed); the logical line's number is that of
//!   its first physical line.
//! * Everything is case-insensitive; element, node and model names are stored
//!   lowercase, and the node names `0` and `gnd` both denote ground, `"0"`.
//! * `.end` stops parsing; `.control … .endc` blocks are skipped entirely.
//!
//! Decisions on the points where we are free to choose:
//!
//! * Negative resistances are *parsed* (SPICE accepts them); the network
//!   builder decides whether to reject them. Zero resistance is an error
//!   (ngspice silently replaces it by 1 mΩ).
//! * Capacitors (`C…`) are open circuits at DC and are skipped (their names
//!   still count for the uniqueness check). Inductors (`L…`) are DC short
//!   circuits that would need special handling, so they are an error.
//! * `.tran`, `.ac`, `.dc` (and every other analysis except `.op`) are errors:
//!   the parsed netlist describes one DC operating point, and silently
//!   dropping a requested sweep would mislead.
//! * Independent sources need a DC value; an `AC` part is ignored, an AC-only
//!   source and transient functions (`SIN(…)`, `PULSE(…)`, …) are errors.
//! * Model cards are validated: `IS > 0`, `N > 0`, `RS ≥ 0`; diode areas must
//!   be positive.
//! * A value token must be a number, an optional scale suffix and optional
//!   unit letters only: `1k2` is rejected (ngspice reads it as `1k`).
//! * The controlling source of an F or H element must be a V element of the
//!   netlist (defined before or after use), like a diode's model.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};

/// A fast, non-cryptographic hash for the parser's name tables (multiply-rotate over
/// 8-byte words; netlists are not adversarial input for a DoS attack on a hash table).
#[derive(Default, Clone, Copy)]
pub struct NameHasher(u64);

impl Hasher for NameHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        const K: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let w = u64::from_le_bytes(c.try_into().expect("8 bytes"));
            self.0 = (self.0.rotate_left(5) ^ w).wrapping_mul(K);
        }
        let mut tail = 0u64;
        for (i, &b) in chunks.remainder().iter().enumerate() {
            tail |= u64::from(b) << (8 * i);
        }
        self.0 = (self.0.rotate_left(5) ^ tail ^ (bytes.len() as u64)).wrapping_mul(K);
    }
    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.0 = (self.0.rotate_left(5) ^ u64::from(i)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
    #[inline]
    fn finish(&self) -> u64 {
        // Mix the high bits down: hashbrown takes its control bits from the top 7.
        self.0 ^ (self.0 >> 29)
    }
}

/// A hash map keyed by names, with [`NameHasher`].
pub type NameMap<K, V> = HashMap<K, V, BuildHasherDefault<NameHasher>>;
/// A hash set of names, with [`NameHasher`].
pub type NameSet<K> = HashSet<K, BuildHasherDefault<NameHasher>>;

/// Name of the ground node after normalisation (`0` and `gnd` map to it).
pub const GROUND: &str = "0";

/// A parsed SPICE netlist.
#[derive(Debug, Clone, PartialEq)]
pub struct SpiceNetlist {
    /// The first line of the file (trimmed), or the text of the last `.title` card.
    pub title: String,
    /// Circuit elements in file order (capacitors are not included).
    pub elements: Vec<SpiceElement>,
    /// Diode model cards, keyed by lowercase model name.
    pub models: BTreeMap<String, DiodeModelCard>,
    /// Simulation options from `.options` and `.temp`.
    pub options: SpiceOptions,
}

impl SpiceNetlist {
    /// The element with the given name (case-insensitive), if any.
    pub fn element(&self, name: &str) -> Option<&SpiceElement> {
        let name = name.to_lowercase();
        self.elements.iter().find(|e| e.name == name)
    }

    /// Distinct non-ground node names (including controlling nodes of E and G
    /// elements) in order of first appearance.
    pub fn nodes(&self) -> Vec<String> {
        let mut seen = NameSet::default();
        let mut out = Vec::new();
        for e in &self.elements {
            let mut names = vec![&e.pos, &e.neg];
            if let ElementKind::Vcvs { cp, cn, .. } | ElementKind::Vccs { cp, cn, .. } = &e.kind {
                names.push(cp);
                names.push(cn);
            }
            for n in names {
                if n != GROUND && seen.insert(n.as_str()) {
                    out.push(n.clone());
                }
            }
        }
        out
    }
}

impl std::str::FromStr for SpiceNetlist {
    type Err = SpiceParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_spice(s)
    }
}

/// Simulation options relevant to a DC operating point.
#[derive(Debug, Clone, PartialEq)]
pub struct SpiceOptions {
    /// Circuit temperature in °C (`.temp T` or `.options temp=T`); default 27.
    pub temp_celsius: f64,
    /// Nominal temperature of model parameters in °C (`.options tnom=T`); default 27.
    pub tnom_celsius: f64,
    /// Minimum conductance added across pn junctions (`.options gmin=G`); default 1e-12.
    pub gmin: f64,
}

impl Default for SpiceOptions {
    fn default() -> Self {
        SpiceOptions {
            temp_celsius: 27.0,
            tnom_celsius: 27.0,
            gmin: 1e-12,
        }
    }
}

/// A `.model NAME D(...)` card. Only the DC parameters at `temp = tnom` are kept.
#[derive(Debug, Clone, PartialEq)]
pub struct DiodeModelCard {
    /// Model name, lowercase.
    pub name: String,
    /// Saturation current `IS` (alias `JS`) in A; default 1e-14.
    pub is: f64,
    /// Emission coefficient `N`; default 1.
    pub n: f64,
    /// Ohmic series resistance `RS` in Ω; default 0.
    pub rs: f64,
    /// 1-based line number of the `.model` card.
    pub line: usize,
}

impl DiodeModelCard {
    /// A card with SPICE default parameters.
    pub fn with_defaults(name: &str, line: usize) -> Self {
        DiodeModelCard {
            name: name.to_lowercase(),
            is: 1e-14,
            n: 1.0,
            rs: 0.0,
            line,
        }
    }
}

/// What an element is, with its element-specific data.
///
/// Sign conventions are SPICE's: for `I`, `F` and `G` the source current flows
/// from `pos` through the element to `neg` (it is drawn out of node `pos` and
/// pushed into node `neg`); for `F` and `H` the controlling current is the
/// current through the named voltage source from its `pos` to its `neg`.
#[derive(Debug, Clone, PartialEq)]
pub enum ElementKind {
    /// `Rname n1 n2 value` or `Rname n1 n2 r=value`.
    Resistor {
        /// Resistance in Ω (finite and non-zero; may be negative).
        resistance: f64,
    },
    /// `Dname anode cathode model [area]`; `pos` is the anode.
    Diode {
        /// Lowercase model name; guaranteed to be a key of [`SpiceNetlist::models`].
        model: String,
        /// Area factor (positive); default 1.
        area: f64,
    },
    /// `Vname n+ n- [DC] value`: `V(pos) - V(neg) = value`.
    VoltageSource {
        /// DC value in V.
        value: f64,
    },
    /// `Iname n+ n- [DC] value`: `value` flows from `pos` through the source to `neg`.
    CurrentSource {
        /// DC value in A.
        value: f64,
    },
    /// `Ename n+ n- nc+ nc- gain`: `V(pos) - V(neg) = gain * (V(cp) - V(cn))`.
    Vcvs {
        /// Positive controlling node (lowercase).
        cp: String,
        /// Negative controlling node (lowercase).
        cn: String,
        /// Voltage gain.
        gain: f64,
    },
    /// `Fname n+ n- vname gain`: current `gain * I(vname)` from `pos` through the source to `neg`.
    Cccs {
        /// Lowercase name of the controlling voltage source (e.g. `"vsense"`).
        vsource: String,
        /// Current gain.
        gain: f64,
    },
    /// `Gname n+ n- nc+ nc- gm`: current `gm * (V(cp) - V(cn))` from `pos` through the source to `neg`.
    Vccs {
        /// Positive controlling node (lowercase).
        cp: String,
        /// Negative controlling node (lowercase).
        cn: String,
        /// Transconductance in S.
        gm: f64,
    },
    /// `Hname n+ n- vname r`: `V(pos) - V(neg) = r * I(vname)`.
    Ccvs {
        /// Lowercase name of the controlling voltage source.
        vsource: String,
        /// Transresistance in Ω.
        r: f64,
    },
}

/// One circuit element.
#[derive(Debug, Clone, PartialEq)]
pub struct SpiceElement {
    /// Lowercase name including the type letter, e.g. `"r1"`.
    pub name: String,
    /// First node (lowercase; ground is `"0"`).
    pub pos: String,
    /// Second node (lowercase; ground is `"0"`).
    pub neg: String,
    /// Element type and data.
    pub kind: ElementKind,
    /// 1-based line number of the element's first physical line.
    pub line: usize,
}

/// A parse error, with the 1-based line number and the offending line's text
/// (comments removed, continuation lines joined).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("line {line}: {message}: {text}")]
pub struct SpiceParseError {
    /// 1-based line number (first physical line of the logical line).
    pub line: usize,
    /// Text of the offending line.
    pub text: String,
    /// What is wrong.
    pub message: String,
}

/// One logical line: physical lines joined, comments stripped, trimmed.
struct Logical<'a> {
    line: usize,
    text: Cow<'a, str>,
}

impl Logical<'_> {
    fn err(&self, message: impl Into<String>) -> SpiceParseError {
        SpiceParseError {
            line: self.line,
            text: self.text.to_string(),
            message: message.into(),
        }
    }
}

/// Parses a SPICE netlist. See the module documentation for the accepted subset.
pub fn parse_spice(text: &str) -> Result<SpiceNetlist, SpiceParseError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut physical = text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    let title = physical.next().unwrap_or("").trim().to_string();
    let logical = join_lines(physical)?;

    let mut netlist = SpiceNetlist {
        title,
        elements: Vec::new(),
        models: BTreeMap::new(),
        options: SpiceOptions::default(),
    };
    // Element name -> line of definition (includes skipped capacitors).
    let mut names: NameMap<String, usize> = NameMap::default();
    names.reserve(logical.len());
    netlist.elements.reserve(logical.len());
    // Text of each element's logical line, for errors found after the main pass.
    let mut texts: Vec<&Logical> = Vec::with_capacity(logical.len());
    let mut tokens: Vec<&str> = Vec::with_capacity(8);

    for l in &logical {
        tokens.clear();
        tokens.extend(l.text.split_whitespace());
        let first = tokens[0].to_lowercase();
        if first.starts_with('.') {
            parse_card(l, &first, &mut netlist)?;
            continue;
        }
        if let Some(&prev) = names.get(&first) {
            return Err(l.err(format!(
                "duplicate element name {first} (first defined on line {prev})"
            )));
        }
        names.insert(first.clone(), l.line);
        if let Some(element) = parse_element(l, &first, &tokens)? {
            netlist.elements.push(element);
            texts.push(l);
        }
    }

    // References that may point forward: diode models and controlling sources.
    let vsources: NameSet<&str> = netlist
        .elements
        .iter()
        .filter(|e| matches!(e.kind, ElementKind::VoltageSource { .. }))
        .map(|e| e.name.as_str())
        .collect();
    for (e, l) in netlist.elements.iter().zip(&texts) {
        match &e.kind {
            ElementKind::Diode { model, .. } if !netlist.models.contains_key(model) => {
                return Err(l.err(format!(
                    "diode {} refers to undefined model {model}",
                    e.name
                )));
            }
            ElementKind::Cccs { vsource, .. } | ElementKind::Ccvs { vsource, .. }
                if !vsources.contains(vsource.as_str()) =>
            {
                return Err(l.err(format!(
                    "{} is controlled by {vsource}, which is not a voltage source of this netlist",
                    e.name
                )));
            }
            _ => {}
        }
    }
    Ok(netlist)
}

/// Pass 1: comments, blank lines, continuations, `.control` blocks and `.end`.
fn join_lines<'a>(
    physical: impl Iterator<Item = &'a str>,
) -> Result<Vec<Logical<'a>>, SpiceParseError> {
    let mut out: Vec<Logical> = Vec::new();
    let mut can_continue = false;
    let mut control_start: Option<(usize, String)> = None;
    for (idx, raw) in physical.enumerate() {
        let line = idx + 2; // the title is line 1
        let trimmed = raw.trim();
        if control_start.is_some() {
            if first_token_lower(trimmed) == ".endc" {
                control_start = None;
            }
            continue;
        }
        if trimmed.starts_with('*') {
            continue;
        }
        let content = strip_inline_comment(trimmed).trim();
        if content.is_empty() {
            continue;
        }
        if let Some(rest) = content.strip_prefix('+') {
            match out.last_mut() {
                Some(prev) if can_continue => {
                    let rest = rest.trim();
                    if !rest.is_empty() {
                        let t = prev.text.to_mut();
                        t.push(' ');
                        t.push_str(rest);
                    }
                }
                _ => {
                    return Err(SpiceParseError {
                        line,
                        text: content.to_string(),
                        message: "continuation line ('+') with no preceding line to continue"
                            .to_string(),
                    })
                }
            }
            continue;
        }
        if content.starts_with('.') {
            match first_token_lower(content).as_str() {
                ".end" => return Ok(out),
                ".control" => {
                    control_start = Some((line, content.to_string()));
                    can_continue = false;
                    continue;
                }
                _ => {}
            }
        }
        out.push(Logical {
            line,
            text: Cow::Borrowed(content),
        });
        can_continue = true;
    }
    if let Some((line, text)) = control_start {
        return Err(SpiceParseError {
            line,
            text,
            message: ".control block without .endc".to_string(),
        });
    }
    Ok(out)
}

fn first_token_lower(s: &str) -> String {
    s.split_whitespace().next().unwrap_or("").to_lowercase()
}

/// Removes an inline comment: `;` anywhere, `$` or `//` at the start or after whitespace.
fn strip_inline_comment(s: &str) -> &str {
    let mut prev_ws = true;
    for (i, c) in s.char_indices() {
        if c == ';' || (prev_ws && (c == '$' || s[i..].starts_with("//"))) {
            return &s[..i];
        }
        prev_ws = c.is_whitespace();
    }
    s
}

/// Lowercases a node name and maps the ground alias `gnd` to `"0"`.
fn node_name(token: &str) -> String {
    let n = if token.is_ascii() {
        token.to_ascii_lowercase()
    } else {
        token.to_lowercase()
    };
    if n == "gnd" {
        GROUND.to_string()
    } else {
        n
    }
}

/// A parameter in the free-form part of a line.
enum Param {
    /// A bare token.
    Positional(String),
    /// `key = value`; `key` is lowercase, `raw_key` as written.
    Named {
        key: String,
        raw_key: String,
        value: String,
    },
}

/// Splits `s` at whitespace, commas and parentheses; `=` is a token of its own.
fn param_tokens(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for c in s.chars() {
        if c.is_whitespace() || matches!(c, ',' | '(' | ')' | '=') {
            if !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
            if c == '=' {
                out.push("=".to_string());
            }
        } else {
            cur.push(c);
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// Groups [`param_tokens`] output into positional and `key=value` parameters.
fn group_params(tokens: &[String]) -> Result<Vec<Param>, String> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        let t = &tokens[i];
        if t == "=" {
            return Err("unexpected '='".to_string());
        }
        if tokens.get(i + 1).map(String::as_str) == Some("=") {
            match tokens.get(i + 2) {
                Some(v) if v != "=" => {
                    out.push(Param::Named {
                        key: t.to_lowercase(),
                        raw_key: t.clone(),
                        value: v.clone(),
                    });
                    i += 3;
                }
                _ => return Err(format!("missing value after {t}=")),
            }
        } else {
            out.push(Param::Positional(t.clone()));
            i += 1;
        }
    }
    Ok(out)
}

/// Text after the first whitespace-separated token.
fn after_first_token(text: &str) -> &str {
    let text = text.trim_start();
    match text.find(char::is_whitespace) {
        Some(i) => text[i..].trim(),
        None => "",
    }
}

/// Text after the first `n` whitespace-separated tokens.
fn after_tokens(text: &str, n: usize) -> &str {
    let mut rest = text;
    for _ in 0..n {
        rest = after_first_token(rest);
    }
    rest
}

/// Parses a value or explains why it cannot be parsed.
fn value_or_err(l: &Logical, what: &str, token: &str) -> Result<f64, SpiceParseError> {
    parse_value(token).ok_or_else(|| {
        if token.starts_with('{') || token.starts_with('\'') {
            l.err(format!(
                "invalid {what} '{token}': expressions and parameters are not supported"
            ))
        } else {
            l.err(format!("invalid {what} '{token}'"))
        }
    })
}

/// Parses an element line. Returns `None` for elements that are skipped (capacitors).
fn parse_element(
    l: &Logical,
    name: &str,
    tokens: &[&str],
) -> Result<Option<SpiceElement>, SpiceParseError> {
    let letter = name.chars().next().unwrap_or(' ');
    let kind_name = match letter {
        'r' => "resistor",
        'd' => "diode",
        'v' => "voltage source",
        'i' => "current source",
        'e' => "voltage-controlled voltage source",
        'f' => "current-controlled current source",
        'g' => "voltage-controlled current source",
        'h' => "current-controlled voltage source",
        'c' => {
            if tokens.len() < 4 {
                return Err(l.err("capacitor needs two nodes and a value"));
            }
            return Ok(None);
        }
        'l' => {
            return Err(l.err(
                "inductors (L) are not supported: an inductor is a short circuit at DC; \
                 replace it by a 0 V voltage source",
            ))
        }
        other => {
            let what = match other {
                'a' => "XSPICE code model (A)",
                'b' => "behavioral source (B)",
                'j' => "JFET (J)",
                'k' => "coupled inductors (K)",
                'm' => "MOSFET (M)",
                'o' | 't' | 'u' | 'y' => "transmission line",
                'q' => "bipolar transistor (Q)",
                's' | 'w' => "switch",
                'x' => "subcircuit instance (X)",
                'z' => "MESFET (Z)",
                _ => "",
            };
            let message = if what.is_empty() {
                format!("unsupported element type '{other}'")
            } else {
                format!("unsupported element type: {what}")
            };
            return Err(l.err(message));
        }
    };
    if tokens.len() < 3 {
        return Err(l.err(format!("{kind_name} {name} needs two nodes")));
    }
    let pos = node_name(tokens[1]);
    let neg = node_name(tokens[2]);
    // Fast path for the common one-value forms (`R1 a b 1k`, `D1 a b dmod`, `V1 a 0 5`):
    // the general parser below gives the same result, and handles everything else.
    if tokens.len() == 4 && !tokens[3].contains([',', '(', ')', '=']) {
        let t = tokens[3];
        let kind = match letter {
            'r' => match parse_value(t) {
                Some(resistance) if resistance != 0.0 => Some(ElementKind::Resistor { resistance }),
                _ => None,
            },
            'd' => Some(ElementKind::Diode {
                model: t.to_lowercase(),
                area: 1.0,
            }),
            'v' => parse_value(t).map(|value| ElementKind::VoltageSource { value }),
            'i' => parse_value(t).map(|value| ElementKind::CurrentSource { value }),
            _ => None,
        };
        if let Some(kind) = kind {
            return Ok(Some(SpiceElement {
                name: name.to_string(),
                pos,
                neg,
                kind,
                line: l.line,
            }));
        }
    }
    let params = || group_params(&param_tokens(after_tokens(&l.text, 3))).map_err(|m| l.err(m));
    let kind = match letter {
        'r' => parse_resistor(l, &params()?)?,
        'd' => parse_diode(l, tokens, &params()?)?,
        'v' | 'i' => {
            let value = parse_source(l, kind_name, &params()?)?;
            if letter == 'v' {
                ElementKind::VoltageSource { value }
            } else {
                ElementKind::CurrentSource { value }
            }
        }
        _ => parse_controlled(l, letter, kind_name, tokens)?,
    };
    Ok(Some(SpiceElement {
        name: name.to_string(),
        pos,
        neg,
        kind,
        line: l.line,
    }))
}

fn parse_resistor(l: &Logical, params: &[Param]) -> Result<ElementKind, SpiceParseError> {
    let mut resistance = None;
    for (i, p) in params.iter().enumerate() {
        let (v, token) = match p {
            Param::Positional(t) if i == 0 => (value_or_err(l, "resistance value", t)?, t),
            Param::Positional(t) => return Err(l.err(format!("unexpected field '{t}'"))),
            Param::Named { key, value, .. } if key == "r" || key == "resistance" => {
                (value_or_err(l, "resistance value", value)?, value)
            }
            // AC resistance and noise flag do not affect the DC solution.
            Param::Named { key, .. } if key == "ac" || key == "noisy" => continue,
            Param::Named { raw_key, .. } => {
                return Err(l.err(format!("unsupported resistor parameter {raw_key}")))
            }
        };
        if resistance.is_some() {
            return Err(l.err(format!("resistance given twice ('{token}')")));
        }
        resistance = Some(v);
    }
    match resistance {
        None => Err(l.err("missing resistance value")),
        Some(0.0) => Err(
            l.err("zero resistance is not allowed (use a 0 V voltage source for a short circuit)")
        ),
        Some(resistance) => Ok(ElementKind::Resistor { resistance }),
    }
}

fn parse_diode(
    l: &Logical,
    tokens: &[&str],
    params: &[Param],
) -> Result<ElementKind, SpiceParseError> {
    let Some(Param::Positional(model)) = params.first() else {
        return Err(l.err("diode needs a model name: Dname anode cathode model [area]"));
    };
    // The model name is the whole whitespace token (it may not contain separators).
    if tokens.get(3).map(|t| t.to_lowercase()) != Some(model.to_lowercase()) {
        return Err(l.err(format!("invalid diode model name '{}'", tokens[3])));
    }
    let mut area = None;
    for (i, p) in params.iter().enumerate().skip(1) {
        let v = match p {
            Param::Positional(t) if t.eq_ignore_ascii_case("off") => continue,
            Param::Positional(t) if i == 1 => value_or_err(l, "diode area", t)?,
            Param::Positional(t) => return Err(l.err(format!("unexpected field '{t}'"))),
            Param::Named { key, value, .. } if key == "area" => {
                value_or_err(l, "diode area", value)?
            }
            // Initial condition: transient only.
            Param::Named { key, .. } if key == "ic" => continue,
            Param::Named { raw_key, .. } => {
                return Err(l.err(format!("unsupported diode instance parameter {raw_key}")))
            }
        };
        if area.is_some() {
            return Err(l.err("diode area given twice"));
        }
        area = Some(v);
    }
    let area = area.unwrap_or(1.0);
    if area <= 0.0 {
        return Err(l.err(format!("diode area must be positive, got {area}")));
    }
    Ok(ElementKind::Diode {
        model: model.to_lowercase(),
        area,
    })
}

/// Parses `[DC] value [AC mag [phase]]` of an independent source.
fn parse_source(l: &Logical, kind_name: &str, params: &[Param]) -> Result<f64, SpiceParseError> {
    let mut dc = None;
    let mut ac = false;
    let mut i = 0;
    while i < params.len() {
        let token = match &params[i] {
            Param::Positional(t) => t,
            Param::Named { raw_key, .. } => {
                return Err(l.err(format!("unexpected parameter {raw_key}= in {kind_name}")))
            }
        };
        let lower = token.to_lowercase();
        match lower.as_str() {
            "dc" => {
                let Some(Param::Positional(v)) = params.get(i + 1) else {
                    return Err(l.err("missing value after DC"));
                };
                if dc.is_some() {
                    return Err(l.err("DC value given twice"));
                }
                dc = Some(value_or_err(l, "DC value", v)?);
                i += 2;
            }
            "ac" => {
                // AC magnitude and phase (both optional) do not affect the DC solution.
                ac = true;
                i += 1;
                for _ in 0..2 {
                    match params.get(i) {
                        Some(Param::Positional(t)) if parse_value(t).is_some() => i += 1,
                        _ => break,
                    }
                }
            }
            "sin" | "pulse" | "exp" | "pwl" | "sffm" | "am" | "trnoise" | "trrandom" | "pat" => {
                return Err(l.err(format!(
                    "transient source function {} is not supported (DC operating point only)",
                    token.to_uppercase()
                )));
            }
            "distof1" | "distof2" => {
                return Err(l.err(format!(
                    "distortion specification {} is not supported",
                    token.to_uppercase()
                )));
            }
            _ if i == 0 => {
                dc = Some(value_or_err(l, "source value", token)?);
                i += 1;
            }
            _ => return Err(l.err(format!("unexpected field '{token}' in {kind_name}"))),
        }
    }
    match dc {
        Some(v) => Ok(v),
        None if ac => Err(l.err(format!(
            "{kind_name} has no DC value (AC-only sources are not supported; write DC 0 explicitly)"
        ))),
        None => Err(l.err(format!("missing {kind_name} value"))),
    }
}

fn parse_controlled(
    l: &Logical,
    letter: char,
    kind_name: &str,
    tokens: &[&str],
) -> Result<ElementKind, SpiceParseError> {
    if let Some(t) = tokens.get(3) {
        let lower = t.to_lowercase();
        if lower.starts_with("poly") {
            return Err(l.err("POLY controlled sources are not supported (linear forms only)"));
        }
        let behavioral = ["value", "vol", "cur", "table", "laplace", "freq"];
        if behavioral.iter().any(|k| {
            lower == *k
                || lower.starts_with(&format!("{k}="))
                || lower.starts_with(&format!("{k}{{"))
        }) {
            return Err(l.err(format!(
                "behavioral controlled source form '{t}' is not supported (linear forms only)"
            )));
        }
    }
    let (usage, n) = match letter {
        'e' => ("Ename n+ n- nc+ nc- gain", 6),
        'g' => ("Gname n+ n- nc+ nc- gm", 6),
        'f' => ("Fname n+ n- vname gain", 5),
        _ => ("Hname n+ n- vname r", 5),
    };
    if tokens.len() != n {
        return Err(l.err(format!(
            "{kind_name} needs {} fields ({usage}), found {}",
            n,
            tokens.len()
        )));
    }
    let coef = value_or_err(l, "gain", tokens[n - 1])?;
    Ok(match letter {
        'e' => ElementKind::Vcvs {
            cp: node_name(tokens[3]),
            cn: node_name(tokens[4]),
            gain: coef,
        },
        'g' => ElementKind::Vccs {
            cp: node_name(tokens[3]),
            cn: node_name(tokens[4]),
            gm: coef,
        },
        'f' => ElementKind::Cccs {
            vsource: tokens[3].to_lowercase(),
            gain: coef,
        },
        _ => ElementKind::Ccvs {
            vsource: tokens[3].to_lowercase(),
            r: coef,
        },
    })
}

/// Parses a dot-card (`first` is its lowercase keyword).
fn parse_card(l: &Logical, first: &str, netlist: &mut SpiceNetlist) -> Result<(), SpiceParseError> {
    match first {
        ".model" => parse_model(l, netlist),
        ".options" | ".option" | ".opt" => parse_options(l, &mut netlist.options),
        ".temp" => {
            let rest = after_first_token(&l.text);
            let vals: Vec<&str> = rest.split_whitespace().collect();
            if vals.len() != 1 {
                return Err(l.err(".temp needs exactly one temperature"));
            }
            netlist.options.temp_celsius = temperature(l, "temperature", vals[0])?;
            Ok(())
        }
        ".title" => {
            netlist.title = after_first_token(&l.text).to_string();
            Ok(())
        }
        ".op" | ".print" | ".plot" | ".save" | ".probe" | ".ic" | ".nodeset" => Ok(()),
        ".endc" => Err(l.err(".endc without .control")),
        ".dc" | ".ac" | ".tran" | ".noise" | ".tf" | ".sens" | ".disto" | ".pz" | ".sp"
        | ".pss" | ".four" | ".fourier" | ".meas" | ".measure" => Err(l.err(format!(
            "unsupported analysis {first} (only the DC operating point, .op, is supported)"
        ))),
        ".include" | ".inc" | ".lib" | ".endl" => Err(l.err(format!(
            "unsupported control card {first} (the netlist must be self-contained)"
        ))),
        ".subckt" | ".ends" => Err(l.err(format!(
            "unsupported control card {first} (subcircuits are not supported)"
        ))),
        ".param" | ".func" | ".csparam" => Err(l.err(format!(
            "unsupported control card {first} (parameters and expressions are not supported)"
        ))),
        _ => Err(l.err(format!("unsupported control card {first}"))),
    }
}

fn temperature(l: &Logical, what: &str, token: &str) -> Result<f64, SpiceParseError> {
    let t = value_or_err(l, what, token)?;
    if t <= -273.15 {
        return Err(l.err(format!("{what} {t} °C is below absolute zero")));
    }
    Ok(t)
}

fn parse_options(l: &Logical, options: &mut SpiceOptions) -> Result<(), SpiceParseError> {
    let params = group_params(&param_tokens(after_first_token(&l.text))).map_err(|m| l.err(m))?;
    for p in &params {
        // Flags (`noacct`, `klu`, ...) and other options (`reltol`, ...) are ignored.
        if let Param::Named { key, value, .. } = p {
            match key.as_str() {
                "gmin" => {
                    let g = value_or_err(l, "gmin", value)?;
                    if g < 0.0 {
                        return Err(l.err(format!("gmin must not be negative, got {g}")));
                    }
                    options.gmin = g;
                }
                "temp" => options.temp_celsius = temperature(l, "temp", value)?,
                "tnom" => options.tnom_celsius = temperature(l, "tnom", value)?,
                _ => {}
            }
        }
    }
    Ok(())
}

/// Diode model parameters that do not affect the DC operating point at `temp = tnom`.
const IGNORED_DIODE_PARAMS: &[&str] = &[
    "level", "cjo", "cj0", "cj", "vj", "pb", "m", "mj", "tt", "fc", "fcs", "cjp", "cjsw", "php",
    "mjsw", "xti", "eg", "kf", "af", "cta", "ctp", "tpb", "tphp", "ttt1", "ttt2", "tm1", "tm2",
    "tcv", "tbv1", "tbv2",
];

fn parse_model(l: &Logical, netlist: &mut SpiceNetlist) -> Result<(), SpiceParseError> {
    let tokens = param_tokens(after_first_token(&l.text));
    let (Some(name), Some(ty)) = (tokens.first(), tokens.get(1)) else {
        return Err(l.err(".model needs a name and a type: .model NAME D(IS=... N=... RS=...)"));
    };
    if name == "=" || ty == "=" {
        return Err(l.err(".model needs a name and a type: .model NAME D(IS=... N=... RS=...)"));
    }
    let name = name.to_lowercase();
    if !ty.eq_ignore_ascii_case("d") {
        return Err(l.err(format!(
            "unsupported model type {} for model {name} (only diode models, type D, are supported)",
            ty.to_uppercase()
        )));
    }
    if let Some(prev) = netlist.models.get(&name) {
        return Err(l.err(format!(
            "duplicate model name {name} (first defined on line {})",
            prev.line
        )));
    }
    let mut card = DiodeModelCard::with_defaults(&name, l.line);
    for p in group_params(&tokens[2..]).map_err(|m| l.err(m))? {
        let (key, raw_key, value) = match p {
            Param::Named {
                key,
                raw_key,
                value,
            } => (key, raw_key, value),
            Param::Positional(t) => {
                return Err(l.err(format!("expected PARAMETER=VALUE in .model, found '{t}'")))
            }
        };
        let v = value_or_err(l, &format!("value for {raw_key}"), &value)?;
        match key.as_str() {
            "is" | "js" => card.is = v,
            "n" => card.n = v,
            "rs" => card.rs = v,
            k if IGNORED_DIODE_PARAMS.contains(&k) => {}
            _ => {
                return Err(l.err(format!(
                    "unsupported diode parameter {}",
                    raw_key.to_uppercase()
                )))
            }
        }
    }
    if card.is <= 0.0 {
        return Err(l.err(format!("diode IS must be positive, got {}", card.is)));
    }
    if card.n <= 0.0 {
        return Err(l.err(format!("diode N must be positive, got {}", card.n)));
    }
    if card.rs < 0.0 {
        return Err(l.err(format!("diode RS must not be negative, got {}", card.rs)));
    }
    netlist.models.insert(name, card);
    Ok(())
}

/// Parses a SPICE number: `[+-]digits[.digits][e[+-]digits]`, an optional
/// case-insensitive scale suffix (`f p n u µ m k g t`, `meg` = 1e6,
/// `mil` = 25.4e-6), then optional unit letters, which are ignored
/// (`1kOhm` = 1000, `10mA` = 0.01, `1Mohm` = 0.001 as in SPICE).
///
/// Returns `None` for anything else (`abc`, empty, `1k2`, `1.5.3`) and for
/// values that are not finite. Decimal scale suffixes are applied exactly (the
/// result is the f64 nearest to the decimal value, so `0.1m` is the same
/// number as `1e-4`); `mil` also gives the correctly rounded result.
pub fn parse_value(token: &str) -> Option<f64> {
    if plain_number(token.as_bytes()) {
        // A plain decimal number: the standard library's parse is correctly rounded,
        // as the general path below is.
        let x: f64 = token.parse().ok()?;
        return x.is_finite().then_some(x);
    }
    let bytes = token.as_bytes();
    let mut i = 0;
    let negative = match bytes.first() {
        Some(b'-') => {
            i += 1;
            true
        }
        Some(b'+') => {
            i += 1;
            false
        }
        _ => false,
    };
    let mut digits = String::new();
    let mut frac_len: i64 = 0;
    while i < bytes.len() && bytes[i].is_ascii_digit() {
        digits.push(bytes[i] as char);
        i += 1;
    }
    if i < bytes.len() && bytes[i] == b'.' {
        i += 1;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            digits.push(bytes[i] as char);
            frac_len += 1;
            i += 1;
        }
    }
    if digits.is_empty() {
        return None;
    }
    let mut exp: i64 = 0;
    if i < bytes.len() && (bytes[i] == b'e' || bytes[i] == b'E') {
        let mut j = i + 1;
        let exp_negative = match bytes.get(j) {
            Some(b'-') => {
                j += 1;
                true
            }
            Some(b'+') => {
                j += 1;
                false
            }
            _ => false,
        };
        let start = j;
        while j < bytes.len() && bytes[j].is_ascii_digit() {
            // Saturate: anything this large is 0 or infinite anyway.
            exp = (exp * 10 + i64::from(bytes[j] - b'0')).min(1_000_000_000);
            j += 1;
        }
        if j > start {
            if exp_negative {
                exp = -exp;
            }
            i = j;
        } else {
            // `1e` / `1ea`: the `e` starts the units, as in ngspice.
            exp = 0;
        }
    }
    let rest = &token[i..];
    let lower = rest.to_ascii_lowercase();
    let (scale_exp, mil, consumed) = if lower.starts_with("meg") {
        (6, false, 3)
    } else if lower.starts_with("mil") {
        (0, true, 3)
    } else if rest.starts_with('µ') {
        (-6, false, 'µ'.len_utf8())
    } else {
        match lower.as_bytes().first() {
            Some(b'f') => (-15, false, 1),
            Some(b'p') => (-12, false, 1),
            Some(b'n') => (-9, false, 1),
            Some(b'u') => (-6, false, 1),
            Some(b'm') => (-3, false, 1),
            Some(b'k') => (3, false, 1),
            Some(b'g') => (9, false, 1),
            Some(b't') => (12, false, 1),
            _ => (0, false, 0),
        }
    };
    if !rest[consumed..].chars().all(char::is_alphabetic) {
        return None;
    }
    let mut exp10 = exp - frac_len + scale_exp;
    if mil {
        // 25.4e-6 = 254e-7: multiply the decimal digits by 254, exactly.
        digits = mul_decimal(&digits, 254);
        exp10 -= 7;
    }
    let sign = if negative { "-" } else { "" };
    let x: f64 = format!("{sign}{digits}e{exp10}").parse().ok()?;
    x.is_finite().then_some(x)
}

/// Whether `b` is `[+-]digits[.digits][e[+-]digits]` with at least one mantissa digit
/// (and at least one exponent digit after an `e`).
fn plain_number(b: &[u8]) -> bool {
    let mut i = usize::from(matches!(b.first(), Some(b'+' | b'-')));
    let digits = |i: &mut usize| {
        let s = *i;
        while *i < b.len() && b[*i].is_ascii_digit() {
            *i += 1;
        }
        *i - s
    };
    let mut n = digits(&mut i);
    if i < b.len() && b[i] == b'.' {
        i += 1;
        n += digits(&mut i);
    }
    if n == 0 {
        return false;
    }
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        i += 1;
        if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
            i += 1;
        }
        if digits(&mut i) == 0 {
            return false;
        }
    }
    i == b.len()
}

/// Multiplies a string of decimal digits by a small integer.
fn mul_decimal(digits: &str, k: u32) -> String {
    let mut out = Vec::with_capacity(digits.len() + 4);
    let mut carry = 0u32;
    for d in digits.bytes().rev() {
        let p = u32::from(d - b'0') * k + carry;
        out.push(b'0' + (p % 10) as u8);
        carry = p / 10;
    }
    while carry > 0 {
        out.push(b'0' + (carry % 10) as u8);
        carry /= 10;
    }
    out.reverse();
    String::from_utf8(out).expect("ASCII digits")
}

/// Formats `x` as the shortest text that [`parse_value`] (and SPICE) reads
/// back as exactly `x`: the shorter of Rust's shortest round-trip decimal
/// (`0.001`, `1500`) and scientific (`1e-7`, `-2.5e300`) forms.
///
/// Non-finite values have no SPICE spelling; they are formatted as `NaN`,
/// `inf` and `-inf`, which `parse_value` rejects.
pub fn format_value(x: f64) -> String {
    let plain = format!("{x}");
    let sci = format!("{x:e}");
    if sci.len() < plain.len() {
        sci
    } else {
        plain
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> SpiceNetlist {
        parse_spice(text).unwrap_or_else(|e| panic!("unexpected error: {e}"))
    }

    /// Parses `text`, expects an error and checks its line, a message fragment and its text.
    fn expect_err(text: &str, line: usize, fragment: &str, line_text: &str) -> SpiceParseError {
        let e = parse_spice(text).expect_err("expected a parse error");
        assert_eq!(e.line, line, "{e}");
        assert!(
            e.message.contains(fragment),
            "message {:?} lacks {fragment:?}",
            e.message
        );
        assert_eq!(e.text, line_text, "{e}");
        e
    }

    fn resistance(n: &SpiceNetlist, name: &str) -> f64 {
        match n.element(name).expect("element").kind {
            ElementKind::Resistor { resistance } => resistance,
            ref k => panic!("{name} is {k:?}"),
        }
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-15 * b.abs().max(a.abs())
    }

    // ---- values ----

    #[test]
    fn value_plain_numbers() {
        assert_eq!(parse_value("1"), Some(1.0));
        assert_eq!(parse_value("-2.5"), Some(-2.5));
        assert_eq!(parse_value("+.5e+1"), Some(5.0));
        assert_eq!(parse_value("1.e3"), Some(1000.0));
        assert_eq!(parse_value("5."), Some(5.0));
        assert_eq!(parse_value("1E-3"), Some(1e-3));
        assert_eq!(parse_value("007"), Some(7.0));
        assert_eq!(
            parse_value("-0").map(f64::to_bits),
            Some((-0.0f64).to_bits())
        );
    }

    #[test]
    fn value_suffixes() {
        let cases = [
            ("1f", 1e-15),
            ("1p", 1e-12),
            ("1n", 1e-9),
            ("1u", 1e-6),
            ("1m", 1e-3),
            ("1k", 1e3),
            ("1meg", 1e6),
            ("1g", 1e9),
            ("1t", 1e12),
            ("1F", 1e-15),
            ("1P", 1e-12),
            ("1N", 1e-9),
            ("1U", 1e-6),
            ("1M", 1e-3),
            ("1K", 1e3),
            ("1MEG", 1e6),
            ("1Meg", 1e6),
            ("1G", 1e9),
            ("1T", 1e12),
            ("2µ", 2e-6),
            ("1.5k", 1500.0),
            ("2.5e3k", 2.5e6),
            ("4.7e-3meg", 4.7e3),
        ];
        for (t, v) in cases {
            assert_eq!(parse_value(t), Some(v), "{t}");
        }
        assert_eq!(parse_value("1mil"), Some(25.4e-6));
        assert_eq!(parse_value("2MIL"), Some(50.8e-6));
        assert_eq!(parse_value("4Milli"), Some(101.6e-6));
    }

    #[test]
    fn value_m_is_milli_and_meg_is_mega() {
        assert_eq!(parse_value("1m"), Some(1e-3));
        assert_eq!(parse_value("1Mohm"), Some(1e-3));
        assert_eq!(parse_value("1MOhm"), Some(1e-3));
        assert_eq!(parse_value("1megohm"), Some(1e6));
        assert_eq!(parse_value("2Meg"), Some(2e6));
        assert_eq!(parse_value("3MEGohm"), Some(3e6));
    }

    #[test]
    fn value_units_are_ignored() {
        assert_eq!(parse_value("1kOhm"), Some(1000.0));
        assert_eq!(parse_value("10mA"), Some(0.01));
        assert_eq!(parse_value("5V"), Some(5.0));
        assert_eq!(parse_value("1e3ohm"), Some(1000.0));
        assert_eq!(parse_value("2.2uF"), Some(2.2e-6));
        assert_eq!(parse_value("3ohm"), Some(3.0));
        assert_eq!(parse_value("2kΩ"), Some(2000.0));
        // `e` without exponent digits starts the units (ngspice: 1e = 1ea = 1).
        assert_eq!(parse_value("1e"), Some(1.0));
        assert_eq!(parse_value("1ea"), Some(1.0));
        // `a` is not atto and `x` is not mega in ngspice.
        assert_eq!(parse_value("1a"), Some(1.0));
        assert_eq!(parse_value("1x"), Some(1.0));
    }

    #[test]
    fn value_suffixes_are_exact() {
        assert_eq!(parse_value("0.1m"), Some(1e-4));
        assert_eq!(parse_value("0.3u"), Some(3e-7));
        assert_eq!(parse_value("123.456meg"), Some(123.456e6));
        assert_eq!(parse_value("1.23mil"), parse_value("31.242e-6"));
        assert_eq!(parse_value("-7mil"), Some(-177.8e-6));
        assert_eq!(parse_value("1e-400"), Some(0.0));
        assert_eq!(parse_value("1e-99999999999999999999"), Some(0.0));
        assert_eq!(parse_value("4.9e-324"), Some(f64::from_bits(1)));
    }

    #[test]
    fn value_rejects_garbage() {
        for t in [
            "",
            "abc",
            "-",
            "+",
            ".",
            "e5",
            "k",
            "nan",
            "NaN",
            "inf",
            "-inf",
            "infinity",
            "1e999",
            "-1e999",
            "1e99999999999999999999",
            "1k2",
            "1.5.3",
            "1k%",
            "1_000",
            "{r1}",
            "'r1'",
            " 1",
            "1 ",
            "--1",
            "0x10",
        ] {
            assert_eq!(parse_value(t), None, "{t:?}");
        }
    }

    #[test]
    fn format_value_examples() {
        assert_eq!(format_value(1500.0), "1500");
        assert_eq!(format_value(1e-7), "1e-7");
        assert_eq!(format_value(0.5), "0.5");
        assert_eq!(format_value(1e300), "1e300");
        assert_eq!(format_value(-0.0), "-0");
        assert_eq!(parse_value(&format_value(f64::NAN)), None);
        assert_eq!(parse_value(&format_value(f64::INFINITY)), None);
        assert_eq!(parse_value(&format_value(f64::NEG_INFINITY)), None);
    }

    #[test]
    fn format_value_round_trips_bit_exactly() {
        let check = |x: f64| {
            let s = format_value(x);
            let y = parse_value(&s).unwrap_or_else(|| panic!("{s} for {x:e} did not parse"));
            assert_eq!(y.to_bits(), x.to_bits(), "{x:e} -> {s} -> {y:e}");
        };
        for x in [
            0.0,
            -0.0,
            1.0,
            0.1,
            1.0 / 3.0,
            f64::MAX,
            f64::MIN,
            f64::MIN_POSITIVE,
            f64::EPSILON,
            f64::from_bits(1),
            -f64::from_bits(1),
            f64::from_bits(0x000f_ffff_ffff_ffff),
            1e-15,
            1e23,
            9007199254740993.0,
        ] {
            check(x);
        }
        // Random bit patterns (all exponents) and random "engineering" values.
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            state
        };
        let mut checked = 0;
        while checked < 20_000 {
            let x = f64::from_bits(next());
            if x.is_finite() {
                check(x);
                checked += 1;
            }
            let mantissa = (next() >> 11) as f64 / (1u64 << 53) as f64;
            let exp = (next() % 40) as i32 - 20;
            check(mantissa * 10f64.powi(exp));
        }
    }

    // ---- overall layout ----

    #[test]
    fn basic_netlist() {
        let n = parse(
            "Simple divider\n\
             V1 in 0 DC 10\n\
             R1 in out 1k\n\
             R2 out GND 1k\n\
             .op\n\
             .end\n",
        );
        assert_eq!(n.title, "Simple divider");
        assert_eq!(n.options, SpiceOptions::default());
        assert!(n.models.is_empty());
        assert_eq!(
            n.elements,
            vec![
                SpiceElement {
                    name: "v1".into(),
                    pos: "in".into(),
                    neg: "0".into(),
                    kind: ElementKind::VoltageSource { value: 10.0 },
                    line: 2,
                },
                SpiceElement {
                    name: "r1".into(),
                    pos: "in".into(),
                    neg: "out".into(),
                    kind: ElementKind::Resistor { resistance: 1000.0 },
                    line: 3,
                },
                SpiceElement {
                    name: "r2".into(),
                    pos: "out".into(),
                    neg: "0".into(),
                    kind: ElementKind::Resistor { resistance: 1000.0 },
                    line: 4,
                },
            ]
        );
        assert_eq!(n.nodes(), vec!["in".to_string(), "out".to_string()]);
        let m: SpiceNetlist = "Simple divider\nV1 in 0 DC 10\nR1 in out 1k\nR2 out GND 1k\n"
            .parse()
            .unwrap();
        assert_eq!(m, n);
    }

    #[test]
    fn first_line_is_always_the_title() {
        let n = parse("R1 a 0 1k\nV1 a 0 1\n");
        assert_eq!(n.title, "R1 a 0 1k");
        assert_eq!(n.elements.len(), 1);
        assert_eq!(n.elements[0].name, "v1");
        // A title that is a comment, a dot-card or garbage is still just the title.
        assert_eq!(parse("* comment\nV1 a 0 1").title, "* comment");
        assert_eq!(parse(".end\nV1 a 0 1").elements.len(), 1);
        assert_eq!(parse("Q1 !! ;;").title, "Q1 !! ;;");
        assert_eq!(parse("").title, "");
        assert!(parse("").elements.is_empty());
        assert!(parse("only a title").elements.is_empty());
    }

    #[test]
    fn title_card_replaces_title() {
        let n = parse("first\n.title  The Real Title \nV1 a 0 1\n");
        assert_eq!(n.title, "The Real Title");
    }

    #[test]
    fn case_folding_and_ground_aliases() {
        let n = parse(
            "t\nVIN Node_A GND 1\nR1 NODE_a gNd 2K\nRload node_A 0 3k\nD1 Node_A Gnd MyDiode\n\
             .MODEL MYDIODE d(Is=2E-14)\n",
        );
        let names: Vec<&str> = n.elements.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["vin", "r1", "rload", "d1"]);
        for e in &n.elements {
            assert_eq!(e.pos, "node_a");
            assert_eq!(e.neg, "0");
        }
        assert_eq!(resistance(&n, "R1"), 2000.0);
        assert_eq!(n.models["mydiode"].is, 2e-14);
        assert_eq!(n.models["mydiode"].name, "mydiode");
        assert!(
            matches!(&n.elements[3].kind, ElementKind::Diode { model, .. } if model == "mydiode")
        );
        assert_eq!(n.nodes(), vec!["node_a".to_string()]);
    }

    #[test]
    fn comments_are_stripped() {
        let n = parse(
            "t\n\
             * full-line comment R9 x y 0\n\
             \x20  * indented comment\n\
             R1 a 0 1k ; semicolon comment\n\
             R2 a 0 2k $ dollar comment\n\
             R3 a 0 3k $nospace comment\n\
             R4 a 0 4k;tight\n\
             R5 a 0 5k // slash comment\n\
             R6 a$b 0 6k\n\
             $ dollar line\n\
             ; semicolon line\n\
             V1 a 0 1\n",
        );
        let names: Vec<&str> = n.elements.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["r1", "r2", "r3", "r4", "r5", "r6", "v1"]);
        for (i, e) in n.elements.iter().take(6).enumerate() {
            assert_eq!(
                e.kind,
                ElementKind::Resistor {
                    resistance: (i as f64 + 1.0) * 1e3
                }
            );
        }
        assert_eq!(n.elements[5].pos, "a$b");
        assert_eq!(n.elements[6].line, 12);
    }

    #[test]
    fn blank_lines_crlf_tabs_and_bom() {
        let n =
            parse("\u{feff}title\r\n\r\n  \t \r\nR1\ta\t0\t1k\r\n\r\nV1 a 0\tDC\t2\r\n.end\r\n");
        assert_eq!(n.title, "title");
        assert_eq!(n.elements.len(), 2);
        assert_eq!(n.elements[0].line, 4);
        assert_eq!(
            n.elements[0].kind,
            ElementKind::Resistor { resistance: 1e3 }
        );
        assert_eq!(n.elements[1].line, 6);
        assert_eq!(
            n.elements[1].kind,
            ElementKind::VoltageSource { value: 2.0 }
        );
    }

    #[test]
    fn continuation_lines() {
        let n = parse(
            "t\n\
             R1 a\n\
             + b\n\
             +\t1k\n\
             V1 a 0\n\
             * a comment between the line and its continuation\n\
             \n\
             \x20  + DC 5\n\
             D1 a b dm\n\
             + 2\n\
             .model dm D(IS=1e-15\n\
             + N=2\n\
             + RS=1)\n",
        );
        assert_eq!(n.elements[0].line, 2);
        assert_eq!(
            (n.elements[0].pos.as_str(), n.elements[0].neg.as_str()),
            ("a", "b")
        );
        assert_eq!(
            n.elements[0].kind,
            ElementKind::Resistor { resistance: 1e3 }
        );
        assert_eq!(n.elements[1].line, 5);
        assert_eq!(
            n.elements[1].kind,
            ElementKind::VoltageSource { value: 5.0 }
        );
        assert_eq!(n.elements[2].line, 9);
        assert_eq!(
            n.elements[2].kind,
            ElementKind::Diode {
                model: "dm".into(),
                area: 2.0
            }
        );
        assert_eq!(
            n.models["dm"],
            DiodeModelCard {
                name: "dm".into(),
                is: 1e-15,
                n: 2.0,
                rs: 1.0,
                line: 11
            }
        );
    }

    #[test]
    fn continuation_errors_report_first_line_and_joined_text() {
        expect_err(
            "t\nV1 a 0 1\nR1 a\n* note\n+ b\n+ 1x2\n",
            3,
            "invalid resistance value '1x2'",
            "R1 a b 1x2",
        );
        expect_err(
            "t\n.model dm D(IS=1e-14\n+ BV=5)\nD1 a 0 dm\n",
            2,
            "unsupported diode parameter BV",
            ".model dm D(IS=1e-14 BV=5)",
        );
    }

    #[test]
    fn continuation_without_line_to_continue() {
        expect_err("t\n+ R1 a 0 1k\n", 2, "continuation", "+ R1 a 0 1k");
        expect_err(
            "t\n* c\n\n+ 1k\nR1 a 0 1k\n",
            4,
            "no preceding line",
            "+ 1k",
        );
        expect_err(
            "t\n.control\nop\n.endc\n+ 1k\n",
            5,
            "no preceding line",
            "+ 1k",
        );
    }

    #[test]
    fn control_blocks_are_skipped() {
        let n = parse(
            "t\nV1 a 0 1\n.control\nset x = 1\nQ1 a b c\n.end\n+ junk\n.ENDC\nR1 a 0 1k\n\
             .Control\nrun\n.endc\n",
        );
        let names: Vec<&str> = n.elements.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["v1", "r1"]);
        assert_eq!(n.elements[1].line, 9);
        expect_err(
            "t\nR1 a 0 1k\n.CONTROL ; go\nop\n",
            3,
            ".control block without .endc",
            ".CONTROL",
        );
        expect_err(
            "t\nR1 a 0 1k\n.endc\n",
            3,
            ".endc without .control",
            ".endc",
        );
    }

    #[test]
    fn end_stops_parsing() {
        let n = parse("t\nR1 a 0 1k\n.END\nQ1 broken line\n.include nothing\n+ x\n");
        assert_eq!(n.elements.len(), 1);
        let n = parse("t\nR1 a 0 1k\n.end ; done\nR1 a 0 1k\n");
        assert_eq!(n.elements.len(), 1);
        // `.ends` and `.endc` are not `.end`.
        expect_err("t\n.ends\nR1 a 0 1k\n", 2, "subcircuits", ".ends");
    }

    // ---- resistors ----

    #[test]
    fn resistor_forms() {
        let n = parse(
            "t\nR1 a 0 1k\nR2 a 0 r=2k\nR3 a 0 R = 3k\nR4 a 0 resistance=4k\nR5 a 0 5k ac=1 noisy=0\n\
             R6 a 0 -50\nR7 a 0 1e-20\n",
        );
        for (i, want) in [1e3, 2e3, 3e3, 4e3, 5e3, -50.0, 1e-20]
            .into_iter()
            .enumerate()
        {
            assert_eq!(
                n.elements[i].kind,
                ElementKind::Resistor { resistance: want }
            );
        }
    }

    #[test]
    fn resistor_errors() {
        expect_err("t\nR1 a 0 0\n", 2, "zero resistance", "R1 a 0 0");
        expect_err("t\nR1 a 0 0k\n", 2, "zero resistance", "R1 a 0 0k");
        expect_err("t\nR1 a 0 -0.0\n", 2, "zero resistance", "R1 a 0 -0.0");
        expect_err("t\nR1 a 0\n", 2, "missing resistance", "R1 a 0");
        expect_err("t\nR1 a\n", 2, "needs two nodes", "R1 a");
        expect_err("t\nR1\n", 2, "needs two nodes", "R1");
        expect_err(
            "t\nR1 a 0 abc\n",
            2,
            "invalid resistance value 'abc'",
            "R1 a 0 abc",
        );
        expect_err("t\nR1 a 0 {rval}\n", 2, "expressions", "R1 a 0 {rval}");
        expect_err(
            "t\nR1 a 0 1k 2k\n",
            2,
            "unexpected field '2k'",
            "R1 a 0 1k 2k",
        );
        expect_err("t\nR1 a 0 1k r=2k\n", 2, "given twice", "R1 a 0 1k r=2k");
        expect_err(
            "t\nR1 a 0 1k tc1=0.01\n",
            2,
            "unsupported resistor parameter tc1",
            "R1 a 0 1k tc1=0.01",
        );
        expect_err(
            "t\nR1 a 0 1k m=2\n",
            2,
            "unsupported resistor parameter m",
            "R1 a 0 1k m=2",
        );
        expect_err("t\nR1 a 0 r=\n", 2, "missing value after r=", "R1 a 0 r=");
        expect_err("t\nR1 a 0 =1k\n", 2, "unexpected '='", "R1 a 0 =1k");
        expect_err("t\nR1 a 0 1e999\n", 2, "invalid resistance", "R1 a 0 1e999");
        expect_err("t\nR1 a 0 nan\n", 2, "invalid resistance", "R1 a 0 nan");
    }

    #[test]
    fn duplicate_element_names() {
        expect_err(
            "t\nR1 a 0 1k\nV1 a 0 1\nr1 b 0 2k\n",
            4,
            "duplicate element name r1 (first defined on line 2)",
            "r1 b 0 2k",
        );
        // Skipped capacitors still own their names.
        expect_err(
            "t\nC1 a 0 1p\nc1 a 0 2p\n",
            3,
            "duplicate element name c1",
            "c1 a 0 2p",
        );
        // Different letters are different names.
        assert_eq!(
            parse("t\nR1 a 0 1k\nV1 a 0 1\nI1 a 0 1\n").elements.len(),
            3
        );
    }

    // ---- diodes and models ----

    #[test]
    fn diode_model_before_and_after_use() {
        let n = parse(
            "t\n.model early D(IS=1e-12 N=1.5 RS=10)\nD1 a 0 early\nD2 a 0 LATE 3\n\
             .MODEL late d IS=2e-15, N=2 ,RS=0.5\n",
        );
        assert_eq!(
            n.models["early"],
            DiodeModelCard {
                name: "early".into(),
                is: 1e-12,
                n: 1.5,
                rs: 10.0,
                line: 2
            }
        );
        assert_eq!(
            n.models["late"],
            DiodeModelCard {
                name: "late".into(),
                is: 2e-15,
                n: 2.0,
                rs: 0.5,
                line: 5
            }
        );
        assert_eq!(
            n.elements[0].kind,
            ElementKind::Diode {
                model: "early".into(),
                area: 1.0
            }
        );
        assert_eq!(
            n.elements[1].kind,
            ElementKind::Diode {
                model: "late".into(),
                area: 3.0
            }
        );
        assert_eq!(
            (n.elements[0].pos.as_str(), n.elements[0].neg.as_str()),
            ("a", "0")
        );
    }

    #[test]
    fn diode_model_defaults_and_layouts() {
        let n = parse(
            "t\n.model d1 D\n.model d2 D()\n.model d3 D ( is = 3e-14 )\n.model d4 D(js=4f)\n\
             .model d5 D(IS=1n CJO=2p CJ0=1p VJ=0.7 M=0.5 TT=1n FC=0.5 XTI=3 EG=1.11 KF=0 AF=1 LEVEL=1)\n\
             .model unused D(N=1.2)\n",
        );
        assert_eq!(n.models["d1"], DiodeModelCard::with_defaults("d1", 2));
        assert_eq!(n.models["d2"], DiodeModelCard::with_defaults("D2", 3));
        assert_eq!(n.models["d3"].is, 3e-14);
        assert_eq!(n.models["d4"].is, 4e-15);
        assert_eq!(
            n.models["d5"],
            DiodeModelCard {
                name: "d5".into(),
                is: 1e-9,
                n: 1.0,
                rs: 0.0,
                line: 6
            }
        );
        assert_eq!(n.models["unused"].n, 1.2);
        assert_eq!(n.models.len(), 6);
    }

    #[test]
    fn diode_instance_forms() {
        let n = parse(
            "t\nD1 a 0 dm 2.5\nD2 a 0 dm area=3\nD3 a 0 dm off\nD4 a 0 dm 4 off ic=0.6\n.model dm D\n",
        );
        let areas: Vec<f64> = n
            .elements
            .iter()
            .map(|e| match e.kind {
                ElementKind::Diode { area, .. } => area,
                _ => unreachable!(),
            })
            .collect();
        assert_eq!(areas, [2.5, 3.0, 1.0, 4.0]);
    }

    #[test]
    fn diode_errors() {
        expect_err(
            "t\nD1 a 0\n.model dm D\n",
            2,
            "needs a model name",
            "D1 a 0",
        );
        expect_err(
            "t\nD1 a 0 dm 0\n.model dm D\n",
            2,
            "area must be positive",
            "D1 a 0 dm 0",
        );
        expect_err(
            "t\nD1 a 0 dm -1\n.model dm D\n",
            2,
            "area must be positive",
            "D1 a 0 dm -1",
        );
        expect_err(
            "t\nD1 a 0 dm big\n.model dm D\n",
            2,
            "invalid diode area 'big'",
            "D1 a 0 dm big",
        );
        expect_err(
            "t\nD1 a 0 dm 2 3\n.model dm D\n",
            2,
            "unexpected field '3'",
            "D1 a 0 dm 2 3",
        );
        expect_err(
            "t\nD1 a 0 dm 2 area=3\n.model dm D\n",
            2,
            "given twice",
            "D1 a 0 dm 2 area=3",
        );
        expect_err(
            "t\nD1 a 0 dm m=2\n.model dm D\n",
            2,
            "unsupported diode instance parameter m",
            "D1 a 0 dm m=2",
        );
        expect_err(
            "t\nD1 a 0 dm(x)\n.model dm D\n",
            2,
            "invalid diode model name",
            "D1 a 0 dm(x)",
        );
    }

    #[test]
    fn undefined_model_names_the_diode_line() {
        expect_err(
            "t\nV1 a 0 1\nD7 a 0 nosuch\n.model other D\n",
            3,
            "diode d7 refers to undefined model nosuch",
            "D7 a 0 nosuch",
        );
    }

    #[test]
    fn model_errors() {
        for (param, text) in [
            ("BV", ".model dm D(BV=5)"),
            ("IBV", ".model dm D(IBV=1m)"),
            ("IKF", ".model dm D(ikf=1)"),
            ("ISR", ".model dm D(ISR=1e-12)"),
            ("NR", ".model dm D NR=2"),
            ("TNOM", ".model dm D(TNOM=50)"),
            ("FOO", ".model dm D(foo=1)"),
        ] {
            expect_err(
                &format!("t\n{text}\n"),
                2,
                &format!("unsupported diode parameter {param}"),
                text,
            );
        }
        expect_err(
            "t\n.model q1 NPN(BF=100)\n",
            2,
            "unsupported model type NPN for model q1",
            ".model q1 NPN(BF=100)",
        );
        expect_err("t\n.model\n", 2, "needs a name and a type", ".model");
        expect_err("t\n.model dm\n", 2, "needs a name and a type", ".model dm");
        expect_err(
            "t\n.model dm D(IS)\n",
            2,
            "expected PARAMETER=VALUE",
            ".model dm D(IS)",
        );
        expect_err(
            "t\n.model dm D(IS=)\n",
            2,
            "missing value after IS=",
            ".model dm D(IS=)",
        );
        expect_err(
            "t\n.model dm D(IS=x)\n",
            2,
            "invalid value for IS 'x'",
            ".model dm D(IS=x)",
        );
        expect_err(
            "t\n.model dm D(IS=0)\n",
            2,
            "IS must be positive",
            ".model dm D(IS=0)",
        );
        expect_err(
            "t\n.model dm D(N=-1)\n",
            2,
            "N must be positive",
            ".model dm D(N=-1)",
        );
        expect_err(
            "t\n.model dm D(RS=-1)\n",
            2,
            "RS must not be negative",
            ".model dm D(RS=-1)",
        );
        expect_err(
            "t\n.model dm D\n.model DM D(N=2)\n",
            3,
            "duplicate model name dm (first defined on line 2)",
            ".model DM D(N=2)",
        );
    }

    // ---- independent sources ----

    #[test]
    fn source_forms() {
        let n = parse(
            "t\nV1 a 0 5\nV2 a 0 DC 5V\nV3 a 0 dc -2.5\nV4 a 0 DC 1 AC 1\nV5 a 0 1 ac 1 90\n\
             V6 a 0 AC 1 0 DC 3\nV7 a 0 2 AC\nI1 a b 1mA\nI2 a b DC 2u\nI3 0 a dc 10m ac 1\n",
        );
        let values: Vec<f64> = n
            .elements
            .iter()
            .map(|e| match e.kind {
                ElementKind::VoltageSource { value } | ElementKind::CurrentSource { value } => {
                    value
                }
                _ => unreachable!(),
            })
            .collect();
        assert_eq!(
            values,
            [5.0, 5.0, -2.5, 1.0, 1.0, 3.0, 2.0, 1e-3, 2e-6, 1e-2]
        );
        assert!(matches!(
            n.elements[7].kind,
            ElementKind::CurrentSource { .. }
        ));
        assert_eq!(
            (n.elements[7].pos.as_str(), n.elements[7].neg.as_str()),
            ("a", "b")
        );
    }

    #[test]
    fn source_errors() {
        for (text, fragment) in [
            ("V1 a 0", "missing voltage source value"),
            ("I1 a 0", "missing current source value"),
            ("V1 a 0 DC", "missing value after DC"),
            ("V1 a 0 AC 1", "AC-only"),
            ("V1 a 0 abc", "invalid source value 'abc'"),
            ("V1 a 0 DC x", "invalid DC value 'x'"),
            ("V1 a 0 1 2", "unexpected field '2'"),
            ("V1 a 0 DC 1 DC 2", "DC value given twice"),
            ("V1 a 0 SIN(0 1 1k)", "transient source function SIN"),
            (
                "V1 a 0 DC 0 PULSE(0 1 0 1n 1n 1u 2u)",
                "transient source function PULSE",
            ),
            ("I1 a 0 PWL(0 0 1 1)", "transient source function PWL"),
            ("V1 a 0 exp (0 1)", "transient source function EXP"),
            ("V1 a 0 1 DISTOF1 1", "DISTOF1"),
            ("V1 a 0 dc=1", "unexpected parameter dc="),
        ] {
            expect_err(&format!("t\n{text}\n"), 2, fragment, text);
        }
    }

    // ---- controlled sources ----

    #[test]
    fn controlled_sources() {
        let n = parse(
            "t\nVsense a b 0\nE1 c 0 a GND 2\nF1 0 d VSENSE 3\nG1 0 e a 0 1m\nH1 f 0 Vlater 500\n\
             Vlater x 0 0\n",
        );
        assert_eq!(
            n.elements[1].kind,
            ElementKind::Vcvs {
                cp: "a".into(),
                cn: "0".into(),
                gain: 2.0
            }
        );
        assert_eq!(
            n.elements[2].kind,
            ElementKind::Cccs {
                vsource: "vsense".into(),
                gain: 3.0
            }
        );
        assert_eq!(
            n.elements[3].kind,
            ElementKind::Vccs {
                cp: "a".into(),
                cn: "0".into(),
                gm: 1e-3
            }
        );
        assert_eq!(
            n.elements[4].kind,
            ElementKind::Ccvs {
                vsource: "vlater".into(),
                r: 500.0
            }
        );
        assert_eq!(
            (n.elements[2].pos.as_str(), n.elements[2].neg.as_str()),
            ("0", "d")
        );
        assert_eq!(n.nodes(), ["a", "b", "c", "d", "e", "f", "x"]);
    }

    #[test]
    fn controlled_source_errors() {
        for (text, fragment) in [
            ("E1 a 0 POLY(1) c 0 0 1", "POLY"),
            ("G1 a 0 poly(2) c 0 d 0 0 1 1", "POLY"),
            ("F1 a 0 POLY(1) V1 0 1", "POLY"),
            ("E1 a 0 value={V(c)*2}", "behavioral"),
            ("E1 a 0 vol='2*V(c)'", "behavioral"),
            ("G1 a 0 cur={1m}", "behavioral"),
            ("E1 a 0 TABLE {V(c)} = (0,0) (1,1)", "behavioral"),
            ("E1 a 0 c 0", "needs 6 fields"),
            ("E1 a 0 c 0 2 3", "needs 6 fields"),
            ("G1 a 0 c", "needs 6 fields"),
            ("F1 a 0 V1", "needs 5 fields"),
            ("H1 a 0 V1 1 2", "needs 5 fields"),
            ("E1 a 0 c 0 big", "invalid gain 'big'"),
            ("F1 a 0 V1 {k}", "expressions"),
        ] {
            expect_err(&format!("t\nV1 c 0 1\n{text}\n"), 3, fragment, text);
        }
        expect_err(
            "t\nV1 a 0 1\nF1 b 0 Vnone 2\n",
            3,
            "f1 is controlled by vnone, which is not a voltage source",
            "F1 b 0 Vnone 2",
        );
        expect_err(
            "t\nR1 a 0 1k\nH1 b 0 R1 2\n",
            3,
            "h1 is controlled by r1, which is not a voltage source",
            "H1 b 0 R1 2",
        );
    }

    // ---- dot-cards ----

    #[test]
    fn options_and_temperature() {
        let n = parse(
            "t\n.options reltol=1e-4 gmin=1e-10 noacct\n.option TEMP = 50\n.opt tnom=30 klu\nR1 a 0 1\n",
        );
        assert_eq!(
            n.options,
            SpiceOptions {
                temp_celsius: 50.0,
                tnom_celsius: 30.0,
                gmin: 1e-10
            }
        );
        assert_eq!(parse("t\n.temp 85\n").options.temp_celsius, 85.0);
        assert_eq!(parse("t\n.TEMP -40\n").options.temp_celsius, -40.0);
        assert_eq!(parse("t\n.options gmin=0\n").options.gmin, 0.0);
        expect_err("t\n.temp\n", 2, "exactly one", ".temp");
        expect_err("t\n.temp 25 50\n", 2, "exactly one", ".temp 25 50");
        expect_err(
            "t\n.temp hot\n",
            2,
            "invalid temperature 'hot'",
            ".temp hot",
        );
        expect_err("t\n.temp -300\n", 2, "below absolute zero", ".temp -300");
        expect_err(
            "t\n.options tnom=-274\n",
            2,
            "below absolute zero",
            ".options tnom=-274",
        );
        expect_err(
            "t\n.options gmin=-1\n",
            2,
            "gmin must not be negative",
            ".options gmin=-1",
        );
        expect_err(
            "t\n.options gmin=x\n",
            2,
            "invalid gmin 'x'",
            ".options gmin=x",
        );
        expect_err(
            "t\n.options gmin=\n",
            2,
            "missing value after gmin=",
            ".options gmin=",
        );
    }

    #[test]
    fn ignored_cards() {
        let n = parse(
            "t\nV1 a 0 1\nR1 a 0 1k\n.op\n.print dc v(a)\n.plot dc v(a)\n.save all\n.probe v(a)\n\
             .ic v(a)=1\n.nodeset v(a)=1\nC1 a 0 1p\nC2 a 0 1uF ic=0\n",
        );
        assert_eq!(n.elements.len(), 2);
        assert_eq!(n.nodes(), ["a"]);
    }

    #[test]
    fn unsupported_cards() {
        for (text, fragment) in [
            (".include models.lib", "unsupported control card .include"),
            (".INC models.lib", "unsupported control card .inc"),
            (".lib models.lib tt", "unsupported control card .lib"),
            (".subckt amp in out", "subcircuits"),
            (".param r=1k", "parameters"),
            (".dc V1 0 1 0.1", "unsupported analysis .dc"),
            (".tran 1n 1u", "unsupported analysis .tran"),
            (".AC dec 10 1 1meg", "unsupported analysis .ac"),
            (".noise v(a) V1 dec 10 1 1k", "unsupported analysis .noise"),
            (".tf v(a) V1", "unsupported analysis .tf"),
            (".global vdd", "unsupported control card .global"),
            (".foo bar", "unsupported control card .foo"),
        ] {
            expect_err(&format!("t\nR1 a 0 1k\n{text}\n"), 3, fragment, text);
        }
    }

    #[test]
    fn unsupported_elements() {
        for (text, fragment) in [
            ("L1 a 0 1u", "inductors (L) are not supported"),
            ("M1 d g s b nmos", "MOSFET"),
            ("Q1 c b e npn", "bipolar transistor"),
            ("X1 a b amp", "subcircuit instance"),
            ("K1 L1 L2 0.9", "coupled inductors"),
            ("B1 a 0 V=1", "behavioral source"),
            ("J1 d g s jmod", "JFET"),
            ("S1 a b c d sw", "switch"),
            ("T1 a 0 b 0 z0=50", "transmission line"),
            ("A1 a b amod", "XSPICE"),
            ("P1 a b", "unsupported element type 'p'"),
            ("1R a b 1k", "unsupported element type '1'"),
        ] {
            let e = expect_err(&format!("t\nR1 a 0 1k\n{text}\n"), 3, fragment, text);
            assert!(e.to_string().starts_with("line 3: "), "{e}");
        }
        expect_err("t\nC1 a 0\n", 2, "capacitor needs", "C1 a 0");
    }

    #[test]
    fn error_display() {
        let e = parse_spice("t\nR1 a 0 0\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "line 2: zero resistance is not allowed (use a 0 V voltage source for a short circuit): R1 a 0 0"
        );
    }

    /// A layout checked against ngspice-39 (`ngspice -b`, printing
    /// `@r*[resistance]`, `@i1[dc]`, node voltages): the title line that looks
    /// like an element is ignored, `1Mohm` is 1 mΩ, `1kOhm` is 1 kΩ, `GND` is
    /// ground, `2mil` is 50.8 µΩ, continuation lines and `;`/`$` comments work,
    /// and the `.control` block is not part of the circuit.
    #[test]
    fn tricky_layout_matches_ngspice() {
        let n = parse(
            "R1 a 0 1k  this is title looking like element\n\
             V1 a 0 DC 1\n\
             R1 a b 1Mohm ; milli\n\
             R2 b 0 1kOhm $ kilo\n\
             R3 b GND 1meg\n\
             I1 c 0 1mA\n\
             R4 c 0 2mil\n\
             R5 d gnd\n\
             + 1e3ohm\n\
             V2 d 0 5V\n\
             .control\n\
             op\n\
             print @r1[resistance] @r2[resistance] @r3[resistance] @r4[resistance] v(c)\n\
             .endc\n\
             .end\n",
        );
        assert_eq!(n.title, "R1 a 0 1k  this is title looking like element");
        // ngspice: 1.000000e-03, 1.000000e+03, 1.000000e+06, 5.080000e-05, 1.000000e+03
        assert_eq!(resistance(&n, "r1"), 1e-3);
        assert_eq!(resistance(&n, "r2"), 1e3);
        assert_eq!(resistance(&n, "r3"), 1e6);
        assert!(close(resistance(&n, "r4"), 5.08e-5));
        assert_eq!(resistance(&n, "r5"), 1e3);
        assert_eq!(n.element("r3").unwrap().neg, "0");
        assert_eq!(n.element("r5").unwrap().line, 8);
        // ngspice: @i1[dc] = 1e-3 and v(c) = -5.08e-8, i.e. I1 draws 1 mA out of node c.
        let i1 = n.element("I1").unwrap();
        assert_eq!(i1.kind, ElementKind::CurrentSource { value: 1e-3 });
        assert_eq!((i1.pos.as_str(), i1.neg.as_str()), ("c", "0"));
        assert_eq!(
            n.element("v2").unwrap().kind,
            ElementKind::VoltageSource { value: 5.0 }
        );
        assert_eq!(n.elements.len(), 8);
    }

    #[test]
    fn one_value_lines_read_as_their_general_forms() {
        // The one-value forms (read by a fast path) and the keyword forms (read by the
        // general parser) of the same elements give the same values, exactly.
        let n = parse(
            "t\nR1 A b 1.5k\nR2 a B r=1.5k\nR3 a b 2.25e3\nR4 a b resistance=2.25e3\n\
             R5 a b -0.125\nR6 a b r=-125m\nD1 a b DMOD\nD2 a b dmod area=1\n\
             V1 a 0 -3.3\nV2 a 0 DC -3.3\nI1 a b 12.5e-3\nI2 a b dc 12.5m\n\
             R7 a b 7.\nR8 a b r=7\nR9 a b .5e+2\nR10 a b r=50\n.model dmod D\n",
        );
        let kinds: Vec<&ElementKind> = n.elements.iter().map(|e| &e.kind).collect();
        for pair in kinds.chunks(2) {
            assert_eq!(pair[0], pair[1]);
        }
        assert_eq!(resistance(&n, "r1"), 1500.0);
        assert_eq!(resistance(&n, "r5"), -0.125);
        assert_eq!(resistance(&n, "r9"), 50.0);
        assert_eq!(n.element("r1").unwrap().pos, "a");
        assert_eq!(n.element("r2").unwrap().neg, "b");
        // Plain numbers that are not finite, or are not plain, still go through the
        // general rules.
        assert_eq!(parse_value("1e400"), None);
        assert_eq!(parse_value("1e"), Some(1.0));
        assert_eq!(parse_value("-.5"), Some(-0.5));
        assert_eq!(parse_value("1.2.3"), None);
        assert_eq!(parse_value("0.1"), Some(0.1));
        assert_eq!(parse_value("1e-400"), Some(0.0));
    }
}
