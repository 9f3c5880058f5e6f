// Starts GraphiQL in the page's #graphiql element: queries and mutations go to the element's
// data-endpoint, subscriptions over graphql-ws to data-subscriptions on the page's own host
// (wss:// when the page came over https://). Ours, not vendored; loaded after React and GraphiQL.
(function () {
  'use strict';
  var root = document.getElementById('graphiql');
  var endpoint = new URL(root.dataset.endpoint, location.href);
  var subscriptions = new URL(root.dataset.subscriptions, location.href);
  subscriptions.protocol = location.protocol === 'https:' ? 'wss:' : 'ws:';
  var fetcher = GraphiQL.createFetcher({
    url: endpoint.href,
    subscriptionUrl: subscriptions.href,
  });
  ReactDOM.createRoot(root).render(
    React.createElement(GraphiQL, { fetcher: fetcher, defaultEditorToolsVisibility: true })
  );
})();
