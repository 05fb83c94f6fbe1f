/** Stands in for the `ws` package in the browser build: the page always hands the SDK the browser's own WebSocket. */
export default undefined;
