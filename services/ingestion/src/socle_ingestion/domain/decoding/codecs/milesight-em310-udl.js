// Milesight EM310-UDL ultrasonic distance sensor (waste-bin fill, water level).
// Written for Socle from the vendor's published frame format (see README.md):
// a sequence of channel records [channel id, channel type, value...], little-endian.
function u16le(b, i) { return b[i] | (b[i + 1] << 8); }

function decodeUplink(input) {
  var b = input.bytes;
  var data = {};
  var warnings = [];
  var i = 0;
  while (i < b.length) {
    if (i + 2 > b.length) return { errors: ["trame tronquée à l'octet " + i] };
    var id = b[i], type = b[i + 1];
    i += 2;
    var need = 0;
    if (id === 0x01 && type === 0x75) { need = 1; if (i + need <= b.length) data.battery = b[i]; }
    else if (id === 0x03 && type === 0x82) { need = 2; if (i + need <= b.length) data.distance = u16le(b, i); }
    else if (id === 0x04 && type === 0x00) { need = 1; if (i + need <= b.length) data.position = b[i] === 1 ? "tilt" : "normal"; }
    else if (id === 0xff && type === 0x01) { need = 1; }
    else if (id === 0xff && (type === 0x09 || type === 0x0a || type === 0xff)) { need = 2; }
    else if (id === 0xff && type === 0x16) { need = 8; }
    else if (id === 0xff && (type === 0x0f || type === 0xfe || type === 0x0b)) { need = 1; }
    else return { errors: ["canal inconnu 0x" + id.toString(16) + " 0x" + type.toString(16) + " à l'octet " + (i - 2)] };
    if (i + need > b.length) return { errors: ["trame tronquée dans le canal 0x" + id.toString(16)] };
    i += need;
  }
  if (data.position === "tilt") warnings.push("capteur incliné : la distance peut être fausse");
  return { data: data, warnings: warnings };
}
