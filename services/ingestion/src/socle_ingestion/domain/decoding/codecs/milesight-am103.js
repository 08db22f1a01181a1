// Milesight AM103 indoor ambience sensor (temperature, humidity, CO2).
// Written for Socle from the vendor's published frame format (see README.md):
// channel records [channel id, channel type, value...], little-endian; 0x20 0xCE carries a
// stored (historical) reading with its own timestamp, sent after a network outage.
function u16le(b, i) { return b[i] | (b[i + 1] << 8); }
function s16le(b, i) { var v = u16le(b, i); return v > 0x7fff ? v - 0x10000 : v; }
function u32le(b, i) { return (b[i] | (b[i + 1] << 8) | (b[i + 2] << 16)) + b[i + 3] * 0x1000000; }

function decodeUplink(input) {
  var b = input.bytes;
  var data = {};
  var i = 0;
  while (i < b.length) {
    if (i + 2 > b.length) return { errors: ["trame tronquée à l'octet " + i] };
    var id = b[i], type = b[i + 1];
    i += 2;
    var need;
    if (id === 0x01 && type === 0x75) need = 1;
    else if (id === 0x03 && type === 0x67) need = 2;
    else if (id === 0x04 && type === 0x68) need = 1;
    else if (id === 0x07 && type === 0x7d) need = 2;
    else if (id === 0x20 && type === 0xce) need = 9;
    else if (id === 0xff && (type === 0x01 || type === 0x0f || type === 0xfe || type === 0x0b)) need = 1;
    else if (id === 0xff && (type === 0x09 || type === 0x0a || type === 0xff)) need = 2;
    else if (id === 0xff && type === 0x16) need = 8;
    else return { errors: ["canal inconnu 0x" + id.toString(16) + " 0x" + type.toString(16) + " à l'octet " + (i - 2)] };
    if (i + need > b.length) return { errors: ["trame tronquée dans le canal 0x" + id.toString(16)] };
    if (id === 0x01) data.battery = b[i];
    else if (id === 0x03) data.temperature = s16le(b, i) / 10;
    else if (id === 0x04) data.humidity = b[i] / 2;
    else if (id === 0x07) data.co2 = u16le(b, i);
    else if (id === 0x20) {
      data.history = data.history || [];
      data.history.push({
        timestamp: u32le(b, i),
        temperature: s16le(b, i + 4) / 10,
        humidity: b[i + 6] / 2,
        co2: u16le(b, i + 7)
      });
    }
    i += need;
  }
  return { data: data };
}
