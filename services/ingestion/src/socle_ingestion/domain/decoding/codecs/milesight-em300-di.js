// Milesight EM300-DI pulse counter (water or energy meter with a pulse output).
// Written for Socle from the vendor's published frame format (see README.md):
// channel records [channel id, channel type, value...], little-endian; 0x20 0xCE and
// 0x21 0xCE carry a stored (historical) reading with its own timestamp.
function u16le(b, i) { return b[i] | (b[i + 1] << 8); }
function s16le(b, i) { var v = u16le(b, i); return v > 0x7fff ? v - 0x10000 : v; }
function u32le(b, i) { return (b[i] | (b[i + 1] << 8) | (b[i + 2] << 16)) + b[i + 3] * 0x1000000; }

function water(b, i) {
  // water = counter * water_conv / pulse_conv, the meter's configured conversion.
  var waterConv = u16le(b, i), pulseConv = u16le(b, i + 2), counter = u32le(b, i + 4);
  return pulseConv === 0 ? counter : counter * waterConv / pulseConv;
}

function decodeUplink(input) {
  var b = input.bytes;
  var data = {};
  var i = 0;
  var sizes = { "1-117": 1, "3-103": 2, "4-104": 1, "5-0": 1, "5-200": 4, "5-225": 8, "133-0": 2,
                "133-225": 9, "32-206": 13, "33-206": 18, "255-1": 1, "255-9": 2, "255-10": 2,
                "255-255": 2, "255-22": 8, "255-15": 1, "255-254": 1, "255-11": 1 };
  while (i < b.length) {
    if (i + 2 > b.length) return { errors: ["trame tronquée à l'octet " + i] };
    var id = b[i], type = b[i + 1];
    var need = sizes[id + "-" + type];
    if (need === undefined) return { errors: ["canal inconnu 0x" + id.toString(16) + " 0x" + type.toString(16) + " à l'octet " + i] };
    i += 2;
    if (i + need > b.length) return { errors: ["trame tronquée dans le canal 0x" + id.toString(16)] };
    if (id === 0x01) data.battery = b[i];
    else if (id === 0x03) data.temperature = s16le(b, i) / 10;
    else if (id === 0x04) data.humidity = b[i] / 2;
    else if ((id === 0x05 || id === 0x85) && type === 0x00) data.gpio = b[i];
    else if (id === 0x05 && type === 0xc8) data.pulse = u32le(b, i);
    else if ((id === 0x05 || id === 0x85) && type === 0xe1) {
      data.water = water(b, i);
      if (id === 0x85) data.water_alarm = b[i + 8];
    } else if (id === 0x20 || id === 0x21) {
      var item = { timestamp: u32le(b, i), temperature: s16le(b, i + 4) / 10, humidity: b[i + 6] / 2 };
      var j = i + 7;
      if (id === 0x21) { item.alarm = b[j]; j += 1; }
      var gpioType = b[j], gpio = b[j + 1];
      if (gpioType === 1) item.gpio = gpio;
      if (id === 0x20 && gpioType === 2) item.pulse = u32le(b, j + 2);
      if (id === 0x21 && gpioType === 2) item.water = water(b, j + 2);
      data.history = data.history || [];
      data.history.push(item);
    }
    i += need;
  }
  return { data: data };
}
