# report.awk: renders a table from a flattened task (see json.awk) as
# Markdown or CSV.
#
# -v format=markdown|csv. Reads the parameters title, columns and rows: rows
# is a list of lists (cells in order) or a list of objects (cells by column
# name; columns default to the first row's keys). Prints the report, and the
# row count on the file named by -v count.

BEGIN { FS = "\t" }

{
    key = $1; val = substr($0, length($1) + 2)
    v[key] = val
    # First-row keys, in order, for rows that are objects.
    if (index(key, "parameters.rows.0.") == 1) {
        k = substr(key, 19)
        if (k != "#" && index(k, ".") == 0 && !(k in seen)) { seen[k] = 1; firstkeys[nfirst++] = k }
    }
}

function fail(msg) { print "report: " msg > "/dev/stderr"; bad = 1; exit 1 }

# The escaped form back to text (json.awk escapes \n, \t, \r and \\).
function unescape(s,   out, i, c, e) {
    out = ""
    for (i = 1; i <= length(s); i++) {
        c = substr(s, i, 1)
        if (c != "\\") { out = out c; continue }
        e = substr(s, ++i, 1)
        out = out (e == "n" ? "\n" : e == "t" ? "\t" : e == "r" ? "\r" : e)
    }
    return out
}

function cell(s) {
    s = unescape(s)
    if (format == "csv") {
        if (s ~ /[",\n\r]/) { gsub(/"/, "\"\"", s); s = "\"" s "\"" }
        return s
    }
    gsub(/\|/, "\\|", s); gsub(/\r?\n/, "<br>", s)
    return s
}

function line(cells, n,   i, out) {
    out = ""
    for (i = 0; i < n; i++) {
        if (format == "csv") out = out (i ? "," : "") cells[i]
        else out = out "| " cells[i] " "
    }
    return format == "csv" ? out : out "|"
}

END {
    if (bad) exit 1
    if (!("parameters.rows.#" in v)) fail("parameter \"rows\" must be a list")
    nrows = v["parameters.rows.#"] + 0
    if ("parameters.columns.#" in v) {
        ncols = v["parameters.columns.#"] + 0
        for (i = 0; i < ncols; i++) col[i] = v["parameters.columns." i]
    } else if (nrows > 0 && !("parameters.rows.0.#" in v)) {
        ncols = nfirst
        for (i = 0; i < ncols; i++) col[i] = firstkeys[i]
    } else {
        ncols = 0
        for (r = 0; r < nrows; r++) if (v["parameters.rows." r ".#"] + 0 > ncols) ncols = v["parameters.rows." r ".#"] + 0
        for (i = 0; i < ncols; i++) col[i] = "column " (i + 1)
    }
    if (ncols == 0) ncols = 1
    if (format != "csv") {
        print "# " unescape(("parameters.title" in v) ? v["parameters.title"] : "Report")
        print ""
    }
    for (i = 0; i < ncols; i++) head[i] = cell(col[i])
    print line(head, ncols)
    if (format != "csv") {
        for (i = 0; i < ncols; i++) head[i] = "---"
        print line(head, ncols)
    }
    for (r = 0; r < nrows; r++) {
        p = "parameters.rows." r
        for (i = 0; i < ncols; i++) {
            k = (p ".#" in v) ? p "." i : p "." col[i]
            row[i] = cell(k in v ? v[k] : "")
        }
        print line(row, ncols)
    }
    print nrows > count
}
