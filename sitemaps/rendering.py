"""The picture rows of the review page, rendered in Python.

Measured with bench/sitemap.py: a page of 100 vehicles has ~1,200 rows of ~20 values each, and the template
engine spent ~8 µs per value (lookup, localisation, escaping): 400+ ms of CPU, most of the page. Here a row is
one f-string with every untrusted value escaped, ~50 µs. The dropdowns carry only their selected option;
static/js/sitemaps.js copies the full list from one <template> per attribute (review.html) on load, so the
page does not send ~9,000 <option>s either. Without JavaScript the form still posts every value as shown.
"""

from html import escape

from django.utils import timezone
from django.utils.safestring import SafeString, mark_safe

from sitemaps.models import ManualFix
from sitemaps.selectors import FixMark, ImageRow, VehicleRow


def _e(value) -> str:
    return escape(str(value), quote=True)


def _mark(mark: FixMark) -> str:
    who = _e(mark.who) + (" (advertiser)" if mark.source == "advertiser_fix" else "")
    at = timezone.localtime(mark.at)
    html = (
        f'<div class="mark"><span class="badge ok">fixed</span> {_e(mark.attribute.replace("image_", ""))} → '
        f'{_e(mark.value)} by {who}, <time datetime="{at.isoformat()}">{at:%Y-%m-%d %H:%M}</time>'
    )
    if mark.before_download:
        html += '<div class="muted carried">fixed before the picture was downloaded</div>'
    if mark.carried_from_url:
        how = "carried over" if mark.carried else "followed the picture"
        html += (
            f'<div class="muted carried">{how} from <a href="{_e(mark.carried_from_url)}" '
            'rel="noopener noreferrer">an earlier URL</a></div>'
        )
    return html + "</div>"


def _select(kind: str, vi_id: int, selected: str, label: str) -> str:
    return (
        f'<input type="hidden" name="shown-{kind}-{vi_id}" value="{_e(selected)}">'
        f'<select name="{kind}-{vi_id}" data-options="{kind}" aria-label="{label}">'
        f"<option selected>{_e(selected)}</option></select>"
    )


def _impact(row: ImageRow, vi_id: int) -> str:
    """Staff, picture shown elsewhere: say where, and offer the scope of the fix."""
    vehicles = f"{row.vehicles} vehicle{'s' if row.vehicles != 1 else ''}"
    advertisers = f"{row.advertisers} advertiser{'s' if row.advertisers != 1 else ''}"
    return (
        f'<div class="impact">This picture is on {vehicles} of {advertisers}. '
        f'<label>Fix <select name="scope-{vi_id}" class="scope" aria-label="Scope of a fix of picture {vi_id}">'
        f'<option value="{ManualFix.Scope.STAFF}" selected>everywhere (staff fix)</option>'
        f'<option value="{ManualFix.Scope.ADVERTISER}">this advertiser only</option></select></label></div>'
    )


def image_row(row: ImageRow, vehicle: VehicleRow, *, staff: bool) -> str:
    vi = row.vehicle_image
    n = vi.position + 1
    ext = _e(vehicle.vehicle.external_id)
    classes = "image-row" + (" fixed" if row.fixed else "") + (" disagrees" if row.disagreements else "")
    thumb = row.thumbnail_url
    if thumb:
        picture = (
            f'<button type="button" class="zoom" data-src="{_e(thumb)}" data-url="{_e(vi.url)}" '
            f'aria-label="Zoom picture {n} of {ext}"><img class="thumb" src="{_e(thumb)}" alt="picture {n}" '
            f'loading="lazy"></button>'
        )
    else:
        # Downloaded but no preview stored, or not downloaded (yet): say which; the link opens the original.
        label = "no preview" if vi.image_id else ("not downloaded" if vi.status == "failed" else "waiting")
        picture = f'<a class="thumb none" href="{_e(vi.url)}" target="_blank" rel="noopener noreferrer">{label}</a>'
    scraped = ' <span class="muted">(scrape)</span>' if row.color_from_scrape else ""
    notes = "".join(_mark(m) for m in row.marks)
    notes += "".join(f'<div><span class="badge warn flag">{_e(f)}</span></div>' for f in row.flags)
    notes += "".join(f'<div><span class="badge bad disagreement">{_e(d)}</span></div>' for d in row.disagreements)
    if staff and row.shared:
        notes += _impact(row, vi.id)
    type_select = _select("type", vi.id, row.type_selected, f"Image type of picture {n} of {ext}")
    color_select = _select("color", vi.id, row.color_selected, f"Colour of picture {n} of {ext}")
    return (
        f'<tr class="{classes}" data-vehicle-image="{vi.id}">'
        f'<td class="pick"><label class="tap"><input type="checkbox" class="pick-box" '
        f'aria-label="Select picture {n} of {ext}"><span class="pick-text" aria-hidden="true">Picture {n}</span>'
        "</label></td>"
        f'<td class="pos">{n}</td>'
        f'<td class="pic">{picture}</td>'
        f'<td class="ml-type">{_e(row.ml_image_type)}</td>'
        f'<td class="ml-color">{_e(row.ml_color)}{scraped}</td>'
        f'<td class="fix fix-type">{type_select}</td>'
        f'<td class="fix fix-color">{color_select}</td>'
        f'<td class="marks">{notes}</td></tr>'
    )


def vehicle_rows_html(rows: list[VehicleRow], *, staff: bool) -> SafeString:
    """Every vehicle section of one review page."""
    out = []
    for vrow in rows:
        v = vrow.vehicle
        scraped = f' <span class="badge">scraped colour: {_e(v.color)}</span>' if v.color else ""
        out.append(
            f'<section class="vehicle card" id="vehicle-{v.id}" data-external-id="{_e(v.external_id)}">'
            f'<h2>{_e(v.external_id)} <span class="muted">{_e(v.title)}</span>{scraped}</h2>'
            '<table class="images"><thead><tr><th><span class="sr">Select</span></th><th>#</th><th>Picture</th>'
            "<th>ML image type</th><th>ML colour</th><th>Image type</th><th>Colour</th><th>Fixed</th></tr></thead>"
            "<tbody>"
        )
        out.extend(image_row(row, vrow, staff=staff) for row in vrow.images)
        out.append("</tbody></table></section>")
    return mark_safe("".join(out))  # every value above went through escape()
