# json.awk: flattens one JSON document into lines "PATH<TAB>VALUE".
#
# PATH joins object keys and array indexes with dots (parameters.rows.0.name);
# every array also gets a line "PATH.#<TAB>LENGTH". String values are decoded
# but kept on one line: a newline is written \n, a tab \t, a CR \r and a
# backslash \\ (printf %b restores them). Numbers, true, false and null are
# written as they are. Run with LC_ALL=C. Exits 1 on malformed input.

{ S = S (NR > 1 ? "\n" : "") $0 }

END {
    N = length(S); P = 1
    parse_value("")
    skip_ws()
    if (P <= N) fail("trailing data")
}

function fail(msg) {
    print "json: " msg " at byte " P > "/dev/stderr"
    exit 1
}

function skip_ws(   c) {
    while (P <= N) {
        c = substr(S, P, 1)
        if (c != " " && c != "\t" && c != "\n" && c != "\r") return
        P++
    }
}

function join(path, key) { return path == "" ? key : path "." key }

function parse_value(path,   c) {
    skip_ws()
    c = substr(S, P, 1)
    if (c == "{") parse_object(path)
    else if (c == "[") parse_array(path)
    else if (c == "\"") printf "%s\t%s\n", path, parse_string()
    else parse_literal(path)
}

function parse_object(path,   key, c) {
    P++; skip_ws()
    if (substr(S, P, 1) == "}") { P++; return }
    while (P <= N) {
        skip_ws(); key = parse_string(); skip_ws()
        if (substr(S, P, 1) != ":") fail("expected ':'")
        P++
        parse_value(join(path, key))
        skip_ws(); c = substr(S, P, 1); P++
        if (c == "}") return
        if (c != ",") fail("expected ',' or '}'")
    }
    fail("unterminated object")
}

function parse_array(path,   i, c) {
    P++; skip_ws(); i = 0
    if (substr(S, P, 1) == "]") { P++; printf "%s\t0\n", join(path, "#"); return }
    while (P <= N) {
        parse_value(join(path, i)); i++
        skip_ws(); c = substr(S, P, 1); P++
        if (c == "]") { printf "%s\t%d\n", join(path, "#"), i; return }
        if (c != ",") fail("expected ',' or ']'")
    }
    fail("unterminated array")
}

function parse_literal(path,   start, c) {
    start = P
    while (P <= N) {
        c = substr(S, P, 1)
        if (index("-+.0123456789eEtruefalsn", c) == 0) break
        P++
    }
    if (P == start) fail("unexpected character")
    printf "%s\t%s\n", path, substr(S, start, P - start)
}

function parse_string(   out, c, e, run) {
    if (substr(S, P, 1) != "\"") fail("expected a string")
    P++; out = ""
    while (P <= N) {
        # Copy a run of plain characters at once.
        if (match(substr(S, P, 4096), /^[^"\\]+/)) {
            out = out substr(S, P, RLENGTH); P += RLENGTH
            continue
        }
        c = substr(S, P, 1); P++
        if (c == "\"") return out
        e = substr(S, P, 1); P++
        if (e == "n") out = out "\\n"
        else if (e == "t") out = out "\\t"
        else if (e == "r") out = out "\\r"
        else if (e == "\\") out = out "\\\\"
        else if (e == "b" || e == "f") out = out " "
        else if (e == "u") { out = out utf8(hex(substr(S, P, 4))); P += 4 }
        else out = out e
    }
    fail("unterminated string")
}

function hex(s,   i, v) {
    v = 0
    for (i = 1; i <= length(s); i++) v = v * 16 + index("0123456789abcdef", tolower(substr(s, i, 1))) - 1
    return v
}

# One code point as UTF-8 bytes; control characters become a space, lone
# surrogates a '?'.
function utf8(c) {
    if (c < 32) return c == 10 ? "\\n" : c == 9 ? "\\t" : " "
    if (c == 92) return "\\\\"
    if (c < 128) return sprintf("%c", c)
    if (c < 2048) return sprintf("%c%c", 192 + int(c / 64), 128 + c % 64)
    if (c >= 55296 && c < 57344) return "?"
    return sprintf("%c%c%c", 224 + int(c / 4096), 128 + int(c / 64) % 64, 128 + c % 64)
}
