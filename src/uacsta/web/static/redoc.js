// Starts ReDoc on /redoc (the bundle is served from /static/apidocs/, no CDN).
"use strict";
(function () {
  var root = document.getElementById("redoc");
  Redoc.init(root.getAttribute("data-openapi-url"), { disableSearch: false }, root);
})();
