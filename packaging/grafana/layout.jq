# layout.jq: draws the panel layout of a Grafana dashboard as SVG: every
# panel where its gridPos puts it, with its title and kind; rows as bands.
# A picture of the layout, not a screenshot of Grafana:
#   jq -r -f packaging/grafana/layout.jq packaging/grafana/campaign-manager.json \
#       >packaging/grafana/campaign-manager.svg
# (tests/packaging.bats checks that the committed SVG is this output).

def esc: gsub("&"; "&amp;") | gsub("<"; "&lt;") | gsub(">"; "&gt;") | gsub("\""; "&quot;");
# fit(n): the string cut to n characters, with an ellipsis when cut.
def fit(n): if length > n then .[0:(n - 1)] + "…" else . end;

40 as $cw | 26 as $rh | 12 as $pad |
(.panels | map(.gridPos.y + .gridPos.h) | max) as $rows |
($cw * 24 + 2 * $pad) as $width |
($rh * $rows + 2 * $pad + 30) as $height |
[
  "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\($width)\" height=\"\($height)\" viewBox=\"0 0 \($width) \($height)\" font-family=\"DejaVu Sans, Helvetica, Arial, sans-serif\">",
  "<rect width=\"100%\" height=\"100%\" fill=\"#111217\"/>",
  "<text x=\"\($pad)\" y=\"\($pad + 14)\" fill=\"#d8d9da\" font-size=\"16\" font-weight=\"bold\">\(.title | esc) — panel layout (\(.panels | map(select(.type != "row")) | length) panels)</text>",
  (.panels[] |
    .gridPos as $g |
    ($pad + $g.x * $cw) as $x |
    ($pad + 30 + $g.y * $rh) as $y |
    if .type == "row" then
      "<text x=\"\($x + 2)\" y=\"\($y + 18)\" fill=\"#8e8e8e\" font-size=\"14\" font-weight=\"bold\">\(.title | esc)</text>"
    else
      ($g.w * $cw - 4) as $w | ($g.h * $rh - 4) as $h |
      "<g><rect x=\"\($x + 2)\" y=\"\($y + 2)\" width=\"\($w)\" height=\"\($h)\" rx=\"3\" fill=\"#181b1f\" stroke=\"#2c3235\"/>" +
      "<text x=\"\($x + 10)\" y=\"\($y + 20)\" fill=\"#d8d9da\" font-size=\"13\">\(.title | fit(($w / 7.5) | floor) | esc)</text>" +
      "<text x=\"\($x + 10)\" y=\"\($y + 38)\" fill=\"#5794f2\" font-size=\"10\" font-family=\"DejaVu Sans Mono, monospace\">\([.targets[].expr | scan("cm_[a-z_]+")] | unique | join(" ") | fit(($w / 6.2) | floor) | esc)</text>" +
      "<text x=\"\($x + 10)\" y=\"\($y + $h - 8)\" fill=\"#6e7175\" font-size=\"11\">\(.type)" +
      " · \(.targets | length) quer\(if (.targets | length) == 1 then "y" else "ies" end)</text></g>"
    end),
  "</svg>"
] | .[]
