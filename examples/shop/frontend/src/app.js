// Asks the API (behind the same edge proxy, under /api) what it runs and what it sells.
fetch("/api/version").then((r) => r.text()).then((v) => {
  document.getElementById("version").textContent = v.trim();
});
fetch("/api/items").then((r) => r.json()).then((items) => {
  const list = document.getElementById("items");
  for (const item of items) {
    const entry = document.createElement("li");
    entry.textContent = `${item.name}: ${item.price}`;
    list.appendChild(entry);
  }
});
