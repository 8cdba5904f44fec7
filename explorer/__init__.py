"""SOP Explorer: the Streamlit app (run `streamlit run streamlit_app.py`).

The library (`sop`) computes; this package only arranges and draws:
  models.py   model picker and st.cache_resource loaders (one copy per server)
  inputs.py   input picker: dataset samples, uploads, drawings
  compute.py  cached SOP forward passes, explanations, curves, split predictions
  charts.py   plotly figures
  urlstate.py query parameters (shareable links)
  ui.py       shared page furniture (sidebar, captions, group gallery)
  pages/      one script per page (Explain, Compare methods, Mistakes, Theory)
"""
