(function () {
  "use strict";
  var button = document.getElementById("rr-chaos-reset");
  var statusLine = document.getElementById("rr-chaos-status");
  var resultLine = document.getElementById("rr-chaos-result");
  var details = document.getElementById("rr-chaos-details");
  var busy = false;
  // The chaos routes sit beside this script (Locust's page, or the live view under chaos/).
  var base = document.currentScript.src.replace(/panel\.js(\?.*)?$/, "");

  function summary(s) {
    var parts = [s.running ? "test running" : "no test running"];
    parts.push(s.active_fault ? "active: #" + s.active_fault.id + " " + s.active_fault.name : "no active fault");
    parts.push(s.faults.count + " fault(s)");
    var pools = s.connections.pools;
    parts.push(pools ? "pools: " + pools.in_use + " in use, " + pools.idle + " idle" : "pools: on the workers");
    var server = s.connections.server;
    parts.push(server.error ? "server: " + server.error : "server: " + server.clients + " connection(s)");
    return parts.join(" \u00b7 ");
  }

  function refresh() {
    fetch(base + "status", {credentials: "same-origin"})
      .then(function (r) { return r.json(); })
      .then(function (s) {
        statusLine.textContent = summary(s);
        details.textContent = JSON.stringify(s, null, 2);
        button.disabled = busy || !s.running || !!s.active_fault;
      })
      .catch(function (e) { statusLine.textContent = "status unavailable: " + e; })
      .then(function () { setTimeout(refresh, 2000); });
  }

  button.addEventListener("click", function () {
    busy = true;
    button.disabled = true;
    resultLine.textContent = "resetting...";
    fetch(base + "redis-reset", {
      method: "POST",
      credentials: "same-origin",
      headers: {"Content-Type": "application/json"},
      body: JSON.stringify({force: true})
    })
      .then(function (r) { return r.json().then(function (body) { return [r.status, body]; }); })
      .then(function (res) {
        var body = res[1];
        resultLine.textContent = res[0] !== 200 ? "refused (" + res[0] + "): " + body.error
          : "fault #" + body.fault_id + " " + body.name + (body.error ? " failed: " + body.error
          : " injected at +" + body.offset_s.toFixed(1) + "s: " + JSON.stringify(body.details));
      })
      .catch(function (e) { resultLine.textContent = "reset failed: " + e; })
      .then(function () { busy = false; });
  });

  document.getElementById("rr-chaos-toggle").addEventListener("click", function (e) {
    e.preventDefault();
    details.hidden = !details.hidden;
  });

  refresh();
})();
