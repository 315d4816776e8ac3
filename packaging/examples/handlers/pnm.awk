# pnm.awk: transforms a plain (ASCII) PPM (P3) or PGM (P2) image.
#
# -v op=grayscale  P3 to P2 with ITU-R 601 luma; a P2 stays as it is
# -v op=flip       top to bottom
# -v op=mirror     left to right
# -v op=half       half the width and height, each pixel the mean of 2x2
# Prints the new image on stdout and "WIDTH HEIGHT" on the file named by -v
# dims. Exits 1 with a message on stderr when the image is malformed.

{
    sub(/#.*/, "")
    for (i = 1; i <= NF; i++) tok[ntok++] = $i
}

function fail(msg) { print "pnm: " msg > "/dev/stderr"; bad = 1; exit 1 }

function num(i) {
    if (i >= ntok || tok[i] !~ /^[0-9]+$/) fail("malformed or truncated image")
    return tok[i] + 0
}

END {
    if (bad) exit 1
    magic = tok[0]
    if (magic == "P3") ch = 3
    else if (magic == "P2") ch = 1
    else fail("not a plain PPM (P3) or PGM (P2) image")
    w = num(1); h = num(2); maxval = num(3)
    if (w < 1 || h < 1 || maxval < 1 || maxval > 65535) fail("bad header")
    if (ntok - 4 < w * h * ch) fail("truncated pixel data")
    for (i = 0; i < w * h * ch; i++) px[i] = num(4 + i)

    out_ch = ch; ow = w; oh = h
    if (op == "grayscale") out_ch = 1
    else if (op == "half") { ow = int(w / 2); oh = int(h / 2); if (ow < 1) ow = 1; if (oh < 1) oh = 1 }
    else if (op != "flip" && op != "mirror") fail("unknown operation " op)

    print (out_ch == 3 ? "P3" : "P2")
    print ow, oh
    print maxval
    for (y = 0; y < oh; y++) {
        line = ""
        for (x = 0; x < ow; x++) {
            for (c = 0; c < out_ch; c++) line = line (x || c ? " " : "") value(x, y, c)
        }
        print line
    }
    print ow, oh > dims
}

# The output sample at (x, y), channel c.
function value(x, y, c,   sx, sy, r, g, b, i, sum, n, dx, dy) {
    if (op == "grayscale") {
        i = (y * w + x) * ch
        if (ch == 1) return px[i]
        return int(0.299 * px[i] + 0.587 * px[i + 1] + 0.114 * px[i + 2] + 0.5)
    }
    if (op == "flip") return px[((h - 1 - y) * w + x) * ch + c]
    if (op == "mirror") return px[(y * w + (w - 1 - x)) * ch + c]
    sum = 0; n = 0
    for (dy = 0; dy < 2; dy++) for (dx = 0; dx < 2; dx++) {
        sx = 2 * x + dx; sy = 2 * y + dy
        if (sx < w && sy < h) { sum += px[(sy * w + sx) * ch + c]; n++ }
    }
    return int(sum / n + 0.5)
}
