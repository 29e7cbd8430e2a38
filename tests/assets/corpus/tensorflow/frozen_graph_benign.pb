

inputPlaceholder

outReluinput"í