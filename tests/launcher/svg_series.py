"""Parses a `trainrun history metrics --plot` SVG as XML and prints, as JSON, the
points of each series: {"METRIC": {"RANK": POINTS}}; a series is a <path
class="series"> and a point each "M" or "L" of its d. Exits 1 when the SVG is
not well-formed XML or a panel has no axes or legend."""
import json
import sys
import xml.etree.ElementTree as ET

NS = "{http://www.w3.org/2000/svg}"
root = ET.parse(sys.argv[1]).getroot()
assert root.tag == NS + "svg", root.tag
out = {}
for panel in root.findall(NS + "g"):
    if panel.get("class") != "metric":
        continue
    groups = {g.get("class") for g in panel.findall(NS + "g")}
    if not {"axes", "legend"} <= groups:
        sys.exit("panel %s has no axes or legend" % panel.get("data-metric"))
    series = out.setdefault(panel.get("data-metric"), {})
    for path in panel.findall(NS + "path"):
        if path.get("class") == "series":
            d = path.get("d")
            series[path.get("data-rank")] = d.count("M") + d.count("L")
print(json.dumps(out, sort_keys=True))
