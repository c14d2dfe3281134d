#!/usr/bin/env bash
# Invoice documents against the world (TAP on stdout): the documents of the e-invoice fixture
# (test/pgtap/670_fixture.psql and 670_fixture_no.psql, the same that test/pgtap/670_einvoice.sql
# checks rule by rule) are written out and
#   - validated against the OASIS UBL 2.1 schema with xmllint (Invoice and CreditNote), when
#     ../shared/peppol (the schemas and the official Peppol examples, see its SOURCES.md) exists;
#   - compared in shape with the official Peppol BIS Billing 3.0 examples: every element our
#     documents use at the top level, in a party and in a line is one the examples use there,
#     in an order no example contradicts;
#   - rendered with headless Chromium (Debian's chromium), when installed: each page to a PNG of
#     the A4 window size that is not blank (a blank page is the check's own negative), and a
#     page printed to PDF.
# A part whose tool or data is missing prints a skip.  Runs against the server PG* points at
# (scripts/test-cluster.sh); needs a superuser.  Leaves no database behind; files in OUT/einvoice.
set -u
cd "$(dirname "$0")/.."
OUT=${1:-build/test}
DIR=$OUT/einvoice
rm -rf "$DIR"
mkdir -p "$DIR"
DIR=$(cd "$DIR" && pwd)
SHARED=$(cd .. && pwd)/shared/peppol
export PGOPTIONS='-c client_min_messages=warning'
PSQL=(psql -X -q -v ON_ERROR_STOP=1 -At)
. test/tap.sh
cleanup() { "${PSQL[@]}" -d postgres -c 'DROP DATABASE IF EXISTS sb_einvoice' >/dev/null 2>&1; }
trap cleanup EXIT
cleanup
skip() {    # skip COUNT REASON
    local i
    for i in $(seq 1 "$1"); do n=$((n + 1)); echo "ok $n # skip $2"; done
}
# The documents: account:kind, the Swedish seller's first, then the Norwegian seller's.
DOCS_SE="se_two:invoice se_two:credit_note de_rc:invoice de_goods:invoice no_export:invoice se_zero:invoice se_multi:invoice"
DOCS_NO="no_domestic:invoice"
PAGES="se_multi:invoice se_two:credit_note de_rc:invoice no_domestic:invoice"
echo "1..44"

"${PSQL[@]}" -d postgres -c 'CREATE DATABASE sb_einvoice' && \
    "${PSQL[@]}" -d sb_einvoice -c 'CREATE EXTENSION subbilling CASCADE' >/dev/null
ok $? "subbilling installs"

# write ACCOUNT KIND: its latest document of the kind as NAME.xml and NAME.html
write() {
    local q="SELECT max(i.id) FROM subbilling.invoices i JOIN subbilling.accounts a ON a.id = i.account_id
              WHERE a.external_id = '$1' AND i.kind = '$2'"
    { "${PSQL[@]}" -d sb_einvoice -c "SELECT xmlserialize(DOCUMENT subbilling.invoice_ubl(($q)) AS text)" >"$DIR/$1-$2.xml" &&
      "${PSQL[@]}" -d sb_einvoice -c "SELECT subbilling.invoice_html(($q))" >"$DIR/$1-$2.html"; } 2>>"$DIR/errors.txt"
}
"${PSQL[@]}" -d sb_einvoice -c 'BEGIN' -f test/pgtap/670_fixture.psql -c 'COMMIT' >"$DIR/fixture.out" 2>&1
ok $? "the fixture bills (Swedish seller)"
rc=0
for d in $DOCS_SE; do write "${d%%:*}" "${d##*:}" || rc=1; done
ok $rc "the Swedish seller's seven documents are written"
"${PSQL[@]}" -d sb_einvoice -c 'BEGIN' \
    -c "CREATE FUNCTION pg_temp.acct(ext text) RETURNS bigint LANGUAGE sql STABLE RETURN (SELECT id FROM subbilling.accounts WHERE external_id = ext)" \
    -f test/pgtap/670_fixture_no.psql -c 'COMMIT' >>"$DIR/fixture.out" 2>&1
ok $? "the fixture bills (Norwegian seller)"
write no_domestic invoice
ok $? "the Norwegian seller's document is written"
[ -s "$DIR/errors.txt" ] && sed 's/^/# /' "$DIR/errors.txt"

# ---------------------------------------------------------------- UBL 2.1 schema (8 documents)
if ! command -v xmllint >/dev/null; then
    skip 8 "xmllint not installed (Debian package libxml2-utils)"
elif [ ! -f "$SHARED/ubl-2.1/xsd/maindoc/UBL-Invoice-2.1.xsd" ]; then
    skip 8 "no $SHARED (the UBL 2.1 schemas)"
else
    for d in $DOCS_SE $DOCS_NO; do
        f="$DIR/${d%%:*}-${d##*:}.xml"
        case $d in *credit_note) xsd=UBL-CreditNote-2.1.xsd ;; *) xsd=UBL-Invoice-2.1.xsd ;; esac
        xmllint --noout --schema "$SHARED/ubl-2.1/xsd/maindoc/$xsd" "$f" >"$f.xmllint" 2>&1
        ok $? "$(basename "$f") is valid against $xsd"
        [ "$(tail -1 "$f.xmllint")" = "$f validates" ] || sed 's/^/# /' "$f.xmllint" | head -5
    done
fi

# ---------------------------------------------------------------- shape of the official examples (3 x 8 documents)
# The local names of the children of the element at XPATH, one per line.
children() {    # FILE XPATH (one xmllint call: the children serialized, their top-level tags read)
    xmllint --xpath "$2/*" "$1" 2>/dev/null | perl -e 'local $/; $_ = <STDIN> // ""; s/<!--.*?-->//gs; my $d = 0;
        while (/<(\/?)([A-Za-z][\w:.-]*)[^>]*?(\/?)>/g) {
            if ($1) { $d-- } else { print((split /:/, $2)[-1], "\n") if $d == 0; $d++ unless $3 } }'
}
# ORDER: every pair of element names "a b" that some example has in this order (a before b);
# our documents may use a name only if an example uses it, and may not put b before a when
# an example has a before b and none has b before a.
learn() {       # XPATH (in the examples) -> FILE of names in order, one document per block
    local f
    for f in "$SHARED"/examples/*.xml; do children "$f" "$1" | awk '!seen[$0]++'; echo "--"; done
}
consistent() {  # LEARNED-FILE OUR-NAMES-FILE: prints what is wrong, nothing if all is well
    awk 'NR == FNR { if ($0 == "--") { for (i = 1; i <= k; i++) for (j = i + 1; j <= k; j++) before[o[i] " " o[j]] = 1; k = 0 }
                     else { known[$0] = 1; o[++k] = $0 }; next }
         { if (!($0 in known)) print "unknown element " $0; ours[++m] = $0 }
         END { for (i = 1; i <= m; i++) for (j = i + 1; j <= m; j++)
                   if ((ours[j] " " ours[i]) in before && !((ours[i] " " ours[j]) in before))
                       print ours[i] " before " ours[j] ", the examples have the opposite order" }' "$1" "$2"
}
# xmllint --xpath knows no namespace prefixes: elements by local name
el() { echo "*[local-name() = '$1']"; }
LINE1="(/*/$(el InvoiceLine)|/*/$(el CreditNoteLine))[1]"
if ! command -v xmllint >/dev/null || [ ! -d "$SHARED/examples" ]; then
    skip 24 "xmllint or $SHARED/examples missing"
else
    learn "/*" >"$DIR/learn_top"
    { learn "/*/$(el AccountingSupplierParty)/$(el Party)"; learn "/*/$(el AccountingCustomerParty)/$(el Party)"; } >"$DIR/learn_party"
    learn "$LINE1" >"$DIR/learn_line"
    for d in $DOCS_SE $DOCS_NO; do
        f="$DIR/${d%%:*}-${d##*:}.xml"
        for part in top:"/*" party:"/*/$(el AccountingCustomerParty)/$(el Party)" line:"$LINE1"; do
            children "$f" "${part#*:}" | awk '!seen[$0]++' >"$DIR/ours"
            bad=$(consistent "$DIR/learn_${part%%:*}" "$DIR/ours")
            [ -s "$DIR/ours" ] && [ -z "$bad" ]
            ok $? "$(basename "$f"): the ${part%%:*}-level elements are the examples' kinds, in their order"
            [ -n "$bad" ] && echo "$bad" | sed 's/^/# /'
        done
    done
fi
# the shape check can fail: a document with CustomizationID after ProfileID and an unknown element
if command -v xmllint >/dev/null && [ -d "$SHARED/examples" ]; then
    printf '%s\n' ID ProfileID CustomizationID Frobnicator >"$DIR/ours"
    [ "$(consistent "$DIR/learn_top" "$DIR/ours" | wc -l)" -ge 2 ]
    ok $? "the shape check finds an unknown element and two elements in the wrong order"
else
    skip 1 "xmllint or $SHARED/examples missing"
fi

# ---------------------------------------------------------------- printed with Chromium (4 pages + blank + PDF)
CHROMIUM=$(command -v chromium || command -v chromium-browser || true)
# png_check FILE: "WIDTH HEIGHT DARK" (pixels darker than light grey) of an 8-bit RGB(A) PNG
png_check() {
    perl -MCompress::Zlib -e '
        local $/; open my $fh, "<:raw", $ARGV[0] or die; my $d = <$fh>;
        substr($d, 0, 8) eq "\x89PNG\r\n\x1a\n" or die "not a PNG\n";
        my ($pos, $w, $h, $depth, $ctype, $idat) = (8, 0, 0, 0, 0, "");
        while ($pos < length $d) {
            my ($len, $type) = unpack("N a4", substr($d, $pos, 8));
            my $body = substr($d, $pos + 8, $len);
            ($w, $h, $depth, $ctype) = unpack("N N C C", $body) if $type eq "IHDR";
            $idat .= $body if $type eq "IDAT";
            $pos += 12 + $len;
        }
        $depth == 8 && ($ctype == 2 || $ctype == 6) or die "unexpected PNG type $depth/$ctype\n";
        my $bpp = $ctype == 6 ? 4 : 3; my $raw = uncompress($idat) // die "bad IDAT\n";
        my $stride = $w * $bpp; my @prev = (0) x $stride; my $dark = 0;
        for my $y (0 .. $h - 1) {
            my $f = ord substr($raw, $y * ($stride + 1), 1);
            my @c = unpack("C*", substr($raw, $y * ($stride + 1) + 1, $stride));
            for my $i (0 .. $#c) {
                my $a = $i >= $bpp ? $c[$i - $bpp] : 0; my $b = $prev[$i]; my $cc = $i >= $bpp ? $prev[$i - $bpp] : 0;
                my $p = $f == 0 ? 0 : $f == 1 ? $a : $f == 2 ? $b : $f == 3 ? int(($a + $b) / 2)
                      : do { my $q = $a + $b - $cc; my ($pa, $pb, $pc) = (abs($q - $a), abs($q - $b), abs($q - $cc));
                             $pa <= $pb && $pa <= $pc ? $a : $pb <= $pc ? $b : $cc };
                $c[$i] = ($c[$i] + $p) & 255;
            }
            for (my $x = 0; $x < $w; $x++) { $dark++ if $c[$x * $bpp] + $c[$x * $bpp + 1] + $c[$x * $bpp + 2] < 3 * 200 }
            @prev = @c;
        }
        print "$w $h $dark\n";' "$1"
}
render() {      # HTML-FILE PNG-FILE
    timeout 60 "$CHROMIUM" --headless --no-sandbox --disable-gpu --hide-scrollbars --no-first-run \
        --user-data-dir="$DIR/chromium" --window-size=794,1123 --screenshot="$2" "file://$1" >>"$DIR/chromium.log" 2>&1
}
if [ -z "$CHROMIUM" ]; then
    skip 6 "chromium not installed (Debian package chromium)"
else
    echo '<!DOCTYPE html><html><head><meta charset="utf-8"><title>blank</title></head><body></body></html>' >"$DIR/blank.html"
    render "$DIR/blank.html" "$DIR/blank.png"
    set -- $(png_check "$DIR/blank.png" 2>&1)
    [ "${1:-}" = 794 ] && [ "${2:-}" = 1123 ] && [ "${3:-}" = 0 ]
    ok $? "the PNG check reads a blank page as 794 x 1123 with no dark pixel (got: $*)"
    for d in $PAGES; do
        name=${d%%:*}-${d##*:}
        render "$DIR/$name.html" "$DIR/$name.png"
        set -- $(png_check "$DIR/$name.png" 2>&1)
        # an invoice page prints text and rules: at least 1 % of the A4 window is dark
        [ "${1:-}" = 794 ] && [ "${2:-}" = 1123 ] && [ "${3:-0}" -gt 8900 ] 2>/dev/null
        ok $? "$name.html renders in Chromium to a 794 x 1123 PNG that is not blank ($* )"
    done
    timeout 60 "$CHROMIUM" --headless --no-sandbox --disable-gpu --no-first-run --user-data-dir="$DIR/chromium" \
        --no-pdf-header-footer --print-to-pdf="$DIR/se_multi-invoice.pdf" "file://$DIR/se_multi-invoice.html" >>"$DIR/chromium.log" 2>&1
    [ "$(head -c 5 "$DIR/se_multi-invoice.pdf" 2>/dev/null)" = "%PDF-" ] && \
        [ "$(grep -a -o '/Count [0-9]*' "$DIR/se_multi-invoice.pdf" | head -1 | cut -d' ' -f2)" -ge 1 ] 2>/dev/null
    ok $? "se_multi-invoice.html prints to PDF ($(grep -a -o '/Count [0-9]*' "$DIR/se_multi-invoice.pdf" | head -1 | cut -d' ' -f2) A4 pages)"
    rm -rf "$DIR/chromium"
fi

[ "$n" -eq 44 ] && [ "$failed" -eq 0 ]
