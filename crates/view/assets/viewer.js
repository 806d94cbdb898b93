// changedet view: the two dates side by side under a swipe, the run's maps and polygons as
// overlays. State (swipe position, overlays shown, their opacity, the view) lives in the URL
// fragment, e.g. #swipe=0.3&layers=change,polygons&opacity=0.7&view=512,-300,0.
// The scene's description and polygons come inline with the page (window.SCENE, POLYGONS), and
// the map is built while the page loads, so that the page's load event waits for the first tiles.
'use strict';

const state = Object.fromEntries(new URLSearchParams(location.hash.slice(1)));

function saveState() {
  history.replaceState(null, '', '#' + new URLSearchParams(state).toString());
}

function panel(position, html) {
  const control = L.control({ position });
  control.onAdd = () => {
    const div = L.DomUtil.create('div', 'cd-panel');
    div.innerHTML = html;
    L.DomEvent.disableClickPropagation(div);
    return div;
  };
  return control;
}

function attributeTable(properties) {
  const rows = Object.entries(properties).map(([k, v]) =>
    `<tr><td>${k}</td><td>${typeof v === 'number' ? +v.toPrecision(4) : v}</td></tr>`);
  return `<table class="cd-attributes">${rows.join('')}</table>`;
}

// Projected coordinates of a map point (column, −row) through the maps' geotransform.
function projected(meta, latlng) {
  const [c0, cx, cy, r0, rx, ry] = meta.transform;
  const column = latlng.lng, row = -latlng.lat;
  return [c0 + column * cx + row * cy, r0 + column * rx + row * ry];
}

function main(meta, polygons) {
  document.title = `changedet view: ${meta.title}`;
  const map = L.map('map', {
    crs: L.CRS.Simple, minZoom: meta.min_zoom, maxZoom: meta.max_zoom, attributionControl: false, fadeAnimation: false,
  });
  const bounds = L.latLngBounds([[-meta.height, 0], [0, meta.width]]);
  // The view first: layers added to a map without one wait, and the swipe needs theirs at once.
  if (state.view) {
    const [x, y, z] = state.view.split(',').map(Number);
    map.setView([y, x], z);
  } else {
    map.fitBounds(bounds);
  }
  const tiles = (name, options) => L.tileLayer(`tiles/${name}/{z}/{x}/{y}.png`, {
    bounds, noWrap: true, minZoom: meta.min_zoom, maxZoom: meta.max_zoom,
    minNativeZoom: meta.min_zoom, maxNativeZoom: meta.max_zoom, ...options,
  });

  const before = tiles('before').addTo(map);
  const after = tiles('after').addTo(map);
  const swipe = L.control.sideBySide(before, after).addTo(map);
  swipe._range.value = state.swipe ?? 0.5;
  swipe._updateClip();
  swipe._range.addEventListener('input', () => { state.swipe = (+swipe._range.value).toFixed(3); saveState(); });

  const opacity = +(state.opacity ?? 0.7);
  const overlays = {};
  for (const name of meta.maps) {
    overlays[name] = tiles(name, { opacity, pane: 'overlayPane' });
  }
  if (polygons) {
    overlays.polygons = L.geoJSON(polygons, {
      style: { color: '#ffe600', weight: 2, fillOpacity: 0.1 },
      onEachFeature: (feature, layer) => {
        layer.bindTooltip(attributeTable(feature.properties), { sticky: true });
        layer.bindPopup(attributeTable(feature.properties));
      },
    });
  }
  const shown = (state.layers ?? 'change').split(',').filter((n) => overlays[n]);
  shown.forEach((n) => overlays[n].addTo(map));
  L.control.layers(null, overlays, { collapsed: false }).addTo(map);
  map.on('overlayadd overlayremove', () => {
    state.layers = Object.keys(overlays).filter((n) => map.hasLayer(overlays[n])).join(',');
    saveState();
  });

  panel('topright', `<label>overlay opacity <input id="cd-opacity" type="range" min="0" max="1" step="0.05" value="${opacity}"></label>`).addTo(map);
  document.getElementById('cd-opacity').addEventListener('input', (e) => {
    state.opacity = e.target.value;
    Object.values(overlays).forEach((layer) => layer.setOpacity && layer.setOpacity(+e.target.value));
    saveState();
  });
  panel('bottomleft', `<div class="cd-coordinates" id="cd-coordinates">${meta.crs}</div>`).addTo(map);
  const coordinates = document.getElementById('cd-coordinates');
  map.on('mousemove', (e) => {
    const [x, y] = projected(meta, e.latlng);
    coordinates.textContent = `pixel ${e.latlng.lng.toFixed(0)}, ${(-e.latlng.lat).toFixed(0)}   ${x.toFixed(5)}, ${y.toFixed(5)}   ${meta.crs}`;
  });
  map.on('click', async (e) => {
    const reply = await fetch(`coordinates.json?column=${e.latlng.lng}&row=${-e.latlng.lat}`);
    if (reply.ok) {
      const c = await reply.json();
      L.popup().setLatLng(e.latlng).setContent(`lon ${c.lon.toFixed(6)}, lat ${c.lat.toFixed(6)}`).openOn(map);
    }
  });
  const label = L.DomUtil.create('div', 'cd-panel cd-dates', document.body);
  const file = (name) => name.split('/').pop();
  label.innerHTML = `<b>before</b> ${file(meta.dates[0])} &nbsp;|&nbsp; <b>after</b> ${file(meta.dates[1])}`;

  map.on('moveend', () => {
    const c = map.getCenter();
    state.view = `${c.lng.toFixed(1)},${c.lat.toFixed(1)},${map.getZoom()}`;
    saveState();
  });
}

main(window.SCENE, window.POLYGONS);
